// The execution context every kernel receives: which thread pool to split work over and which
// instruction set to use. There is no global pool and no global ISA switch; tests build contexts
// with a forced ISA and run the same model code through each.
#pragma once
#include <memory>
#include <string>

#include "core/threadpool.h"

namespace sq {

// Kernel implementation to use. kBest picks the best the CPU supports at run time.
// kScalar is the plain C++ reference (always built, always tested).
// kAvx512Vnni is kAvx512 plus AVX512-VBMI and AVX512-VNNI (Ice Lake, Zen 4 and later): the same
// Highway kernels, except that decode (n = 1) of 3- and 4-bit lookup tables and of int4 groups
// quantizes the activations to int8 per block and runs integer lookup / dot-product kernels
// (kernels/q8.h), as llama.cpp does for its quantized formats. kAvx512 keeps f32 activations.
enum class Isa { kBest, kScalar, kAvx2, kAvx512, kAvx512Vnni };

// "best", "scalar", "avx2", "avx512", "avx512vnni"; throws on others
Isa isa_from_name(const std::string& s);
std::string isa_name(Isa isa);
bool isa_supported(Isa isa);  // does this CPU run it (kBest and kScalar always true)
Isa best_isa();              // the widest supported of kAvx512Vnni, kAvx512, kAvx2, else kScalar
// The Highway target a concrete ISA's f32 kernels come from (kAvx512Vnni -> kAvx512).
inline Isa hwy_isa(Isa isa) { return isa == Isa::kAvx512Vnni ? Isa::kAvx512 : isa; }
// The concrete ISA a kernel runs for `isa`: kBest -> best_isa(); an unsupported one throws sq::Error
// (so a hand-built context asking for AVX-512 on an AVX2 machine fails cleanly instead of SIGILL).
Isa resolve_isa(Isa isa);

struct ExecContext {
  ThreadPool* pool = nullptr;  // never null in a context made by make_context
  Isa isa = Isa::kBest;
};

// Owns a pool; isa from the argument, else from env SQUEEZE_ISA, else kBest. An unknown name or an ISA
// this CPU lacks is an sq::Error ("SQUEEZE_ISA=avx512: this CPU does not support it (...)").
struct OwnedContext {
  std::unique_ptr<ThreadPool> pool;
  ExecContext ctx;
};
OwnedContext make_context(int n_threads = 0, const std::string& isa = "");

}  // namespace sq
