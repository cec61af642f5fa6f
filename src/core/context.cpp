#include "core/context.h"

#include <cstdlib>

#include <hwy/targets.h>

#include "core/error.h"

namespace sq {

namespace {

// Highway's name for each target we build kernels for (hwy::SupportedTargets() checks CPUID and
// that the OS saves the wider registers).
int64_t hwy_target_of(Isa isa) {
  switch (isa) {
    case Isa::kAvx2: return HWY_AVX2;    // AVX2 + FMA + F16C + BMI2
    case Isa::kAvx512:
    case Isa::kAvx512Vnni: return HWY_AVX3;  // AVX-512 F/VL/DQ/BW
    default: return 0;
  }
}

std::string supported_list() {
  std::string s = "scalar";
  for (Isa i : {Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Vnni})
    if (isa_supported(i)) s += ", " + isa_name(i);
  return s;
}

}  // namespace

Isa isa_from_name(const std::string& s) {
  if (s == "best") return Isa::kBest;
  if (s == "scalar") return Isa::kScalar;
  if (s == "avx2") return Isa::kAvx2;
  if (s == "avx512") return Isa::kAvx512;
  if (s == "avx512vnni") return Isa::kAvx512Vnni;
  fail("unknown ISA '", s, "' (expected scalar, avx2, avx512, avx512vnni or best)");
}

std::string isa_name(Isa isa) {
  switch (isa) {
    case Isa::kBest: return "best";
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx512Vnni: return "avx512vnni";
  }
  return "?";
}

bool isa_supported(Isa isa) {
  if (isa == Isa::kBest || isa == Isa::kScalar) return true;
  // hwy::SupportedTargets() runs CPUID on every call (measured: 2% of a decode profile, as every matmul
  // resolves its ISA); the answer never changes within a process.
  static const int64_t targets = hwy::SupportedTargets();
  if ((targets & hwy_target_of(isa)) == 0) return false;
  if (isa == Isa::kAvx512Vnni) {
    // AVX-512 F/BW/VL (checked above, with OS support for the registers) + VBMI (vpermb) + VNNI (vpdpbusd).
    static const bool vnni = __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512vnni");
    return vnni;
  }
  return true;
}

Isa best_isa() {
  if (isa_supported(Isa::kAvx512Vnni)) return Isa::kAvx512Vnni;
  if (isa_supported(Isa::kAvx512)) return Isa::kAvx512;
  if (isa_supported(Isa::kAvx2)) return Isa::kAvx2;
  return Isa::kScalar;
}

Isa resolve_isa(Isa isa) {
  if (isa == Isa::kBest) return best_isa();
  if (!isa_supported(isa))
    fail("ISA ", isa_name(isa), ": this CPU does not support it (supported: ", supported_list(), ")");
  return isa;
}

OwnedContext make_context(int n_threads, const std::string& isa) {
  OwnedContext oc;
  std::string name = isa, source = "isa";
  if (name.empty()) {
    const char* env = std::getenv("SQUEEZE_ISA");
    if (env && *env) {
      name = env;
      source = "SQUEEZE_ISA";
    }
  }
  Isa chosen = Isa::kBest;
  if (!name.empty()) {
    try {
      chosen = isa_from_name(name);
    } catch (const Error& e) {
      fail(source, "=", name, ": ", e.what());
    }
    if (!isa_supported(chosen))
      fail(source, "=", name, ": this CPU does not support it (supported: ", supported_list(), ")");
  }
  oc.pool = std::make_unique<ThreadPool>(n_threads);
  oc.ctx.pool = oc.pool.get();
  oc.ctx.isa = chosen;
  return oc;
}

}  // namespace sq
