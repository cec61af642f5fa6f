// Each squeeze subcommand lives in its own cli/cmd_<name>.cpp and registers itself in add_commands
// (cli/registry.cpp). Commands are thin: parse flags, call the library, print results to stdout and
// progress to stderr. Work happens in the subcommand callback; errors are sq::Error.
#pragma once
#include <CLI/CLI.hpp>
#include <cmath>
#include <string>

#include "core/context.h"

namespace sq::cli {

// CLI11's numeric checks let "nan" and "inf" through (every comparison with NaN is false).
inline CLI::Validator finite_number() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        try {
          size_t n = 0;
          const double v = std::stod(s, &n);
          if (n == s.size() && std::isfinite(v)) return "";
        } catch (const std::exception&) {
        }
        return "must be a finite number, got " + s;
      },
      "FINITE");
}

void add_commands(CLI::App& app);

void add_generate(CLI::App& app);
void add_eval(CLI::App& app);
void add_inspect(CLI::App& app);
void add_isa(CLI::App& app);
void add_calibrate(CLI::App& app);
void add_quantize(CLI::App& app);
void add_bench(CLI::App& app);
void add_synth(CLI::App& app);

// Common flags: --threads N and --isa NAME (default: env SQUEEZE_ISA, else best).
struct ExecFlags {
  int threads = 0;
  std::string isa;
  void add(CLI::App* cmd);
  OwnedContext make() const { return make_context(threads, isa); }
};

// Reads a text file for eval/calibrate; empty files are an error naming the file.
std::string read_data_file(const std::string& path);

}  // namespace sq::cli
