// Per-thread grow-only buffers for the temporaries of a kernel call (quantized activations, X in a
// kernel's column order, transposes): a call allocates only when its thread needs a larger buffer than
// it had before, so steady decoding allocates nothing (tests/test_engine.cpp counts). Each Tag names
// its own buffer; a kernel must not hold a buffer across a call that uses the same Tag on the same
// thread (kernels do not nest: a kernel's tasks never call a kernel with the caller's tags).
// Contents are left as the last user left them: clear what must start at zero.
#pragma once
#include <cstddef>
#include <vector>

namespace sq::kernels {

template <class Tag, class T>
T* thread_buffer(size_t n) {
  thread_local std::vector<T> v;
  if (v.size() < n) v.resize(n);
  return v.data();
}

}  // namespace sq::kernels
