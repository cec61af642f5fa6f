// The prompt-processing (n >= 2 rows of X) core every weight format shares: a tile of 4 weight rows ×
// 1024 columns is decoded once into an L1-resident f32 buffer by a format-specific decoder, then every
// row of X runs against it in a register-blocked micro-kernel (R = 4 weight rows × C rows of X).
//
// Included inside `namespace sq::kernels::HWY_NAMESPACE` of each per-target kernel file (dense_hwy.cpp,
// lut_hwy.cpp), once per Highway target, hence no include guard. Uses full-width vectors: 8 f32 lanes
// on AVX2, 16 on AVX-512.
//
// Decoder contract (`dec`):
//   dec(r, k0, kb, dst)   writes W[r, k0 .. k0 + kb) as f32 to dst (aligned). It may write past kb, up
//                         to the end of the 1024-column tile; k0 is a multiple of 1024.
//   dec.prefetch(r, k0)   hints that tile (r .. r+3, k0) comes next (may do nothing).
// NOLINT(build/header_guard)

namespace tile {

using DT = hn::ScalableTag<float>;
using VT = hn::Vec<DT>;

constexpr size_t kTileRows = 4;     // weight rows per tile (R of the micro-kernel)
constexpr size_t kTileCols = 1024;  // columns per tile: 4 × 1024 f32 = 16 KiB, stays in L1
// Rows of X per micro-kernel call: R*C accumulators + C x vectors + 1 weight vector must fit the
// register file (16 vectors on AVX2: 12 + 3 + 1; AVX-512 has 32).
constexpr size_t kXRows = HWY_TARGET == HWY_AVX3 ? 4 : 3;
// X blocks up to this size stay in L2 (512 KiB per core on Zen 3, 1-2 MiB on Intel) next to the tile.
constexpr size_t kXL2Bytes = size_t(192) << 10;

// out[c*R + i] = Σ_{k < kvec} wb[i*kTileCols + k] · x[c*ldx + k]; kvec a multiple of the vector length.
template <size_t C>
HWY_INLINE void BufTile(const float* HWY_RESTRICT wb, const float* HWY_RESTRICT x, size_t ldx, size_t kvec,
                        float* HWY_RESTRICT out) {
  constexpr size_t R = kTileRows;
  const DT df;
  const size_t N = hn::Lanes(df);
  VT acc[R * C];
  for (size_t t = 0; t < R * C; t++) acc[t] = hn::Zero(df);
  for (size_t k = 0; k < kvec; k += N) {
    VT xv[C];
    for (size_t c = 0; c < C; c++) xv[c] = hn::LoadU(df, x + c * ldx + k);
    for (size_t i = 0; i < R; i++) {
      const VT wv = hn::Load(df, wb + i * kTileCols + k);
      for (size_t c = 0; c < C; c++) acc[i * C + c] = hn::MulAdd(wv, xv[c], acc[i * C + c]);
    }
  }
  for (size_t c = 0; c < C; c++)
    for (size_t i = 0; i < R; i++) out[c * R + i] = hn::GetLane(hn::SumOfLanes(df, acc[i * C + c]));
}

// Output rows [r0, r1) of Y[n, ldy] = X[n, len] (row stride ldx) · Wᵀ. The first column block of a row
// tile writes Y, later ones add to it.
template <class Decode>
void RowsBuffered(size_t len, const float* x, size_t ldx, size_t n, float* y, size_t ldy, size_t r0, size_t r1,
                  const Decode& dec) {
  constexpr size_t R = kTileRows, KB = kTileCols, C = kXRows;
  const DT df;
  const size_t N = hn::Lanes(df);
  HWY_ALIGN float wb[R * KB];
  float out[R * C];
  auto run_tile = [&](size_t r, size_t k0) HWY_ATTR {
    const size_t kb = std::min(KB, len - k0), kvec = kb - kb % N;
    const size_t nr = std::min(R, r1 - r);
    for (size_t i = 0; i < R; i++) {
      if (i < nr)
        dec(r + i, k0, kb, wb + i * KB);
      else  // rows past the end: zeros, their outputs are dropped
        std::fill(wb + i * KB, wb + i * KB + kb, 0.0f);
    }
    for (size_t j = 0; j < n; j += C) {
      const size_t c_here = std::min(C, n - j);
      const float* xj = x + j * ldx + k0;
      switch (c_here) {
        case 1: BufTile<1>(wb, xj, ldx, kvec, out); break;
        case 2: BufTile<2>(wb, xj, ldx, kvec, out); break;
        case 3: BufTile<3>(wb, xj, ldx, kvec, out); break;
        default: BufTile<C>(wb, xj, ldx, kvec, out); break;
      }
      for (size_t c = 0; c < c_here; c++)
        for (size_t i = 0; i < nr; i++) {
          float s = out[c * R + i];
          for (size_t k = kvec; k < kb; k++) s += wb[i * KB + k] * xj[c * ldx + k];
          float& dst = y[(j + c) * ldy + r + i];
          dst = k0 == 0 ? s : dst + s;
        }
    }
  };
  if (n * len * sizeof(float) <= kXL2Bytes) {
    // All of X fits in L2: walk W in memory order (row tiles outermost).
    for (size_t r = r0; r < r1; r += R)
      for (size_t k0 = 0; k0 < len; k0 += KB) run_tile(r, k0);
  } else {
    // Column blocks outermost: the X block (n × 1024 f32, 256 KiB for n = 64) stays in L2 while this
    // thread's rows pass; W is then read in pieces a row apart, so the decoder may prefetch the next.
    for (size_t k0 = 0; k0 < len; k0 += KB)
      for (size_t r = r0; r < r1; r += R) {
        if (r + R < r1) dec.prefetch(r + R, k0);
        run_tile(r, k0);
      }
  }
}

}  // namespace tile
