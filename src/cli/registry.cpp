#include "cli/commands.h"
#include "core/atomic_file.h"
#include "core/error.h"

namespace sq::cli {

void add_commands(CLI::App& app) {
  add_generate(app);
  add_eval(app);
  add_inspect(app);
  add_isa(app);
  add_calibrate(app);
  add_quantize(app);
  add_bench(app);
  add_synth(app);
}

void ExecFlags::add(CLI::App* cmd) {
  cmd->add_option("--threads", threads, "worker threads (default: all cores)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--isa", isa, "kernel instruction set: best, scalar, avx2, avx512, avx512vnni (default: $SQUEEZE_ISA or best)");
}

std::string read_data_file(const std::string& path) {
  std::string s = read_text_file(path);
  if (s.empty()) fail(path, ": data file is empty");
  return s;
}

}  // namespace sq::cli
