#include "core/dtype.h"

#include "core/error.h"

namespace sq {

namespace {
struct DTypeInfo {
  DType t;
  const char* name;
  size_t size;
};
constexpr DTypeInfo kInfo[] = {
    {DType::F32, "F32", 4}, {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2}, {DType::F64, "F64", 8},
    {DType::I32, "I32", 4}, {DType::I64, "I64", 8}, {DType::I16, "I16", 2},   {DType::I8, "I8", 1},
    {DType::U8, "U8", 1},   {DType::BOOL, "BOOL", 1},
};
}  // namespace

size_t dtype_size(DType t) { return kInfo[int(t)].size; }
std::string_view dtype_name(DType t) { return kInfo[int(t)].name; }

bool dtype_from_name(std::string_view s, DType* out) {
  for (const auto& i : kInfo)
    if (s == i.name) {
      *out = i.t;
      return true;
    }
  return false;
}

float load_as_f32(const void* data, DType t, size_t i) {
  const auto* b = static_cast<const uint8_t*>(data);
  switch (t) {
    case DType::F32: { float v; std::memcpy(&v, b + 4 * i, 4); return v; }
    case DType::F16: { uint16_t v; std::memcpy(&v, b + 2 * i, 2); return f16_to_f32(v); }
    case DType::BF16: { uint16_t v; std::memcpy(&v, b + 2 * i, 2); return bf16_to_f32(v); }
    case DType::F64: { double v; std::memcpy(&v, b + 8 * i, 8); return float(v); }
    case DType::I32: { int32_t v; std::memcpy(&v, b + 4 * i, 4); return float(v); }
    case DType::I64: { int64_t v; std::memcpy(&v, b + 8 * i, 8); return float(v); }
    case DType::I16: { int16_t v; std::memcpy(&v, b + 2 * i, 2); return float(v); }
    case DType::I8: return float(int8_t(b[i]));
    case DType::U8:
    case DType::BOOL: return float(b[i]);
  }
  fail("load_as_f32: unknown dtype");
}

void convert_to_f32(const void* src, DType t, float* dst, size_t n) {
  if (t == DType::F32) {
    std::memcpy(dst, src, n * 4);
    return;
  }
  for (size_t i = 0; i < n; i++) dst[i] = load_as_f32(src, t, i);
}

}  // namespace sq
