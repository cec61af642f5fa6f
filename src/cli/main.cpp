// squeeze: calibrate, quantize, evaluate, generate and benchmark LLMs on the CPU.
// Every failure the user can cause ends in one line "squeeze: error: ..." and exit status 1.
#include <cstdio>
#include <exception>

#include "cli/commands.h"
#include "core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"squeeze: post-training weight quantization (SqueezeLLM, SmoothQuant+) and a CPU engine"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "squeeze 0.1.0");
  sq::cli::add_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::RuntimeError& e) {
    return e.get_exit_code();
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "squeeze: error: %s\n", e.what());
    return 2;
  } catch (const sq::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "\nsqueeze: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "\nsqueeze: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "\nsqueeze: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
