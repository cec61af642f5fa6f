// Element types of stored tensors and scalar conversions (the reference for every SIMD conversion).
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace sq {

enum class DType : uint8_t { F32, F16, BF16, F64, I32, I64, I16, I8, U8, BOOL };

size_t dtype_size(DType t);
std::string_view dtype_name(DType t);  // safetensors spelling: "F32", "F16", "BF16", ...
bool dtype_from_name(std::string_view s, DType* out);

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round to nearest even, NaN stays NaN (as torch does).
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1);
  return uint16_t(u >> 16);
}

// IEEE binary16 <-> binary32, exact for every finite half, round-to-nearest-even on the way down.
inline float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t u;
  if (exp == 0) {
    if (mant == 0) {
      u = sign;
    } else {  // subnormal: renormalise
      int e = -1;
      do {
        e++;
        mant <<= 1;
      } while (!(mant & 0x400));
      mant &= 0x3ff;
      u = sign | uint32_t(127 - 15 - e) << 23 | mant << 13;
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | mant << 13;
  } else {
    u = sign | (exp + 127 - 15) << 23 | mant << 13;
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline uint16_t f32_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint32_t sign = (u >> 16) & 0x8000;
  uint32_t absu = u & 0x7fffffffu;
  if (absu > 0x7f800000u) return uint16_t(sign | 0x7e00);  // NaN
  if (absu >= 0x477ff000u) return uint16_t(sign | 0x7c00);  // overflow -> inf (65520 rounds up)
  if (absu < 0x38800000u) {                                  // subnormal or zero in half
    if (absu < 0x33000000u) return uint16_t(sign);           // < 2^-25 rounds to zero
    uint32_t exp = absu >> 23;
    uint32_t mant = (absu & 0x7fffff) | 0x800000;
    // value = mant * 2^(exp-150); in units of the half subnormal step 2^-24 that is mant >> (126-exp)
    uint32_t shift = 126 - exp;
    uint32_t half = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) half++;
    return uint16_t(sign | half);
  }
  uint32_t r = absu + 0xfffu + ((absu >> 13) & 1);  // round to nearest even on bit 13
  r -= 0x38000000u;                                  // rebias 127 -> 15
  return uint16_t(sign | (r >> 13));
}

// Reads element i of a buffer of type t as float (F32/F16/BF16/F64/I32/I64/I16/I8/U8).
float load_as_f32(const void* data, DType t, size_t i);

// dst[i] = src[i] as float, n elements.
void convert_to_f32(const void* src, DType t, float* dst, size_t n);

}  // namespace sq
