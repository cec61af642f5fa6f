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
enum class Isa { kBest, kScalar, kAvx2, kAvx512 };

Isa isa_from_name(const std::string& s);  // "best", "scalar", "avx2", "avx512"; throws on others
std::string isa_name(Isa isa);
bool isa_supported(Isa isa);  // does this CPU run it (kBest and kScalar always true)
Isa best_isa();              // kAvx512 if supported, else kAvx2 if supported, else kScalar
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
