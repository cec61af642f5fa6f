// squeeze isa [NAME]: lists the kernel instruction sets this CPU runs; with NAME, exits 0 if it runs
// that one and 1 otherwise (scripts/test.sh uses it to force each supported ISA in turn).
#include <cstdio>

#include "cli/commands.h"
#include "core/context.h"

namespace sq::cli {

void add_isa(CLI::App& app) {
  auto name = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("isa", "list the kernel instruction sets this CPU supports");
  cmd->add_option("name", *name, "exit 0 if this ISA is supported (scalar, avx2, avx512, avx512vnni)");
  cmd->callback([name] {
    if (!name->empty()) {
      if (!isa_supported(isa_from_name(*name))) throw CLI::RuntimeError(1);
      return;
    }
    for (Isa i : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Vnni})
      std::printf("%-10s %s\n", isa_name(i).c_str(), isa_supported(i) ? "supported" : "not supported");
    std::printf("best       %s\n", isa_name(best_isa()).c_str());
  });
}

}  // namespace sq::cli
