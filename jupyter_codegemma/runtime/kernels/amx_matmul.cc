// y[M, N] = x[M, K] · W[N, K]ᵀ · diag(scale[N]) for int8 weights, with Intel AMX (bfloat16).
//
// A prompt chunk multiplies many activation rows by each weight matrix, so it is bound by
// arithmetic, not by reading the weights. AMX multiplies 16×32 bfloat16 tiles into 16×16
// float32 tiles (TDPBF16PS); one core does more in one instruction than AVX-512 does in
// sixteen. Integers up to 256 are exact in bfloat16, so the int8 weights convert without
// loss and the float weights are never needed: only the activations are rounded (to
// bfloat16, a relative 2⁻⁹), and accumulation is float32.
//
// The kernel computes yᵀ = W · xᵀ. TDPBF16PS reads its first operand row-major, as W is
// stored, so a weight tile is 16 rows of W converted to bfloat16 — no reordering, which
// matters because every call converts all the weights it reads (keeping a bfloat16 copy would
// cost memory the int8 weights exist to save). The second operand must be in "VNNI" layout,
// each 4-byte word a pair of consecutive k: the activations are packed like that once per
// call (a 16×16 transpose of words per tile). Each 16×16 result tile is transposed back into
// rows of y. Units of work are a few panels of 32 weight rows (output columns) each.
//
// Linux hands out AMX state only to processes that ask (arch_prctl ARCH_REQ_XCOMP_PERM);
// without that, the first tile instruction kills the process. CodegemmaAmxRequest asks, and
// __init__.py registers this kernel only when it said yes.

#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "parallel_for.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

// Only this file's own functions may use AMX and AVX-512 BF16 (not XLA's inline headers).
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,amx-tile,amx-bf16")

namespace {

constexpr int64_t kTileRows = 16;  // rows of every tile
constexpr int64_t kTileK = 32;     // bfloat16 values along K in one A-tile row (64 bytes)
constexpr int64_t kPanel = 32;     // output columns per panel: two weight tiles
constexpr int64_t kUnitPanels = 8;  // panels per unit of work shared between threads
constexpr int64_t kTileWords = kTileRows * 16;  // 32-bit words in one tile (1 KiB)

// Tiles 0–3 accumulate a 32×32 block of yᵀ, 4–5 hold 32 weight rows, 6–7 32 activation rows.
struct TileConfig {
  uint8_t palette_id = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

void ConfigureTiles() {
  TileConfig config;
  for (int t = 0; t < 8; ++t) {
    config.rows[t] = kTileRows;
    config.colsb[t] = 64;
  }
  _tile_loadconfig(&config);
}

// 32 floats -> 32 bfloat16 (round to nearest even), as one 64-byte row.
inline __m512i ToBf16(__m512 low, __m512 high) { return (__m512i)_mm512_cvtne2ps_pbh(high, low); }

// r[c] = row c of a 16×16 matrix of 32-bit words -> r[c] = column c.
inline void Transpose16x16(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  // Now, in each 128-bit lane L, r[4i + j] holds column 4L + j of rows 4i … 4i + 3.
  for (int i = 0; i < 4; ++i) {
    r[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    r[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    r[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    r[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  // Gather lane L of r[j], r[4 + j], r[8 + j], r[12 + j] into column 4L + j.
  for (int j = 0; j < 4; ++j) {
    const __m512i even_lo = _mm512_shuffle_i32x4(r[j], r[4 + j], 0x88);  // lanes 0, 2
    const __m512i odd_lo = _mm512_shuffle_i32x4(r[j], r[4 + j], 0xDD);   // lanes 1, 3
    const __m512i even_hi = _mm512_shuffle_i32x4(r[8 + j], r[12 + j], 0x88);
    const __m512i odd_hi = _mm512_shuffle_i32x4(r[8 + j], r[12 + j], 0xDD);
    t[j] = _mm512_shuffle_i32x4(even_lo, even_hi, 0x88);       // column j
    t[8 + j] = _mm512_shuffle_i32x4(even_lo, even_hi, 0xDD);   // column 8 + j
    t[4 + j] = _mm512_shuffle_i32x4(odd_lo, odd_hi, 0x88);     // column 4 + j
    t[12 + j] = _mm512_shuffle_i32x4(odd_lo, odd_hi, 0xDD);    // column 12 + j
  }
  for (int c = 0; c < 16; ++c) r[c] = t[c];
}

// Activation rows [m0, m0 + 16) -> tiles[K/32] of [16 k-pairs][16 rows] bfloat16 pairs
// (VNNI layout); rows at or past m_rows are zero.
void PackActivations(const float* x, int64_t m_rows, int64_t k, int64_t m0, uint32_t* tiles) {
  for (int64_t kb = 0; kb < k / kTileK; ++kb) {
    __m512i rows[16];
    for (int c = 0; c < 16; ++c) {
      if (m0 + c < m_rows) {
        const float* src = x + (m0 + c) * k + kb * kTileK;
        rows[c] = ToBf16(_mm512_loadu_ps(src), _mm512_loadu_ps(src + 16));  // word p = k-pair p
      } else {
        rows[c] = _mm512_setzero_si512();
      }
    }
    Transpose16x16(rows);  // rows[p] = k-pair p of all 16 activation rows: one tile row
    uint32_t* tile = tiles + kb * kTileWords;
    for (int p = 0; p < 16; ++p) _mm512_storeu_si512(tile + p * 16, rows[p]);
  }
}

// Weight rows [n0, n0 + 32) -> panel[32][K] bfloat16, row-major (exact: |w| <= 127).
void ConvertWeights(const int8_t* w, int64_t k, int64_t n0, uint16_t* panel) {
  for (int64_t r = 0; r < kPanel; ++r) {
    const int8_t* src = w + (n0 + r) * k;
    uint16_t* dst = panel + r * k;
    for (int64_t i = 0; i < k; i += kTileK) {
      const __m512 low = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(src + i))));
      const __m512 high = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(src + i + 16))));
      _mm512_storeu_si512(dst + i, ToBf16(low, high));
    }
  }
}

struct Problem {
  const uint32_t* xt;  // [row tiles][K/32][256]: the packed activations
  int64_t m_rows, row_tiles, k, n;
  const int8_t* w;
  const float* scale;
  float* y;
};

// A 16×16 tile of yᵀ (rows: output columns n0 …, columns: activation rows m0 …) -> y, scaled.
void StoreTransposed(const Problem& p, const float* block, int64_t n0, int64_t m0) {
  __m512i rows[16];
  for (int i = 0; i < 16; ++i) rows[i] = _mm512_load_si512(block + i * 16);
  Transpose16x16(rows);  // rows[c] = activation row m0 + c over the 16 output columns
  const __m512 scale = _mm512_loadu_ps(p.scale + n0);
  for (int c = 0; c < 16 && m0 + c < p.m_rows; ++c) {
    _mm512_storeu_ps(p.y + (m0 + c) * p.n + n0, _mm512_mul_ps(_mm512_castsi512_ps(rows[c]), scale));
  }
}

// y[:, n0 : n0 + 32] for every activation row (tiles configured by the caller).
void MultiplyPanel(const Problem& p, int64_t n0) {
  thread_local std::vector<uint16_t> panel;
  panel.resize(kPanel * p.k);
  ConvertWeights(p.w, p.k, n0, panel.data());
  alignas(64) float block[4][kTileWords];
  const int64_t w_stride = p.k * sizeof(uint16_t);
  const uint16_t* w0 = panel.data();
  const uint16_t* w1 = w0 + kTileRows * p.k;
  const int64_t x_tiles = p.k / kTileK;
  for (int64_t t = 0; t < p.row_tiles; t += 2) {
    const bool two = t + 1 < p.row_tiles;  // a second tile of 16 activation rows
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    const uint32_t* x0 = p.xt + t * x_tiles * kTileWords;
    const uint32_t* x1 = x0 + x_tiles * kTileWords;
    for (int64_t kb = 0; kb < x_tiles; ++kb) {
      _tile_loadd(4, w0 + kb * kTileK, w_stride);
      _tile_loadd(5, w1 + kb * kTileK, w_stride);
      _tile_loadd(6, x0 + kb * kTileWords, 64);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(2, 5, 6);
      if (two) {
        _tile_loadd(7, x1 + kb * kTileWords, 64);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(3, 5, 7);
      }
    }
    _tile_stored(0, block[0], 64);
    _tile_stored(2, block[2], 64);
    StoreTransposed(p, block[0], n0, t * kTileRows);
    StoreTransposed(p, block[2], n0 + kTileRows, t * kTileRows);
    if (two) {
      _tile_stored(1, block[1], 64);
      _tile_stored(3, block[3], 64);
      StoreTransposed(p, block[1], n0, (t + 1) * kTileRows);
      StoreTransposed(p, block[3], n0 + kTileRows, (t + 1) * kTileRows);
    }
  }
}

// Panels [first, first + count): one unit of work. Loading the tile configuration and
// releasing the tiles cost about a microsecond, so they happen once per unit, not per panel.
void MultiplyPanels(const Problem& p, int64_t first, int64_t count) {
  ConfigureTiles();
  for (int64_t i = first; i < first + count; ++i) MultiplyPanel(p, i * kPanel);
  _tile_release();
}

ffi::Error AmxInt8Matmul(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::S8> w,
                         ffi::Buffer<ffi::F32> scale, ffi::ResultBuffer<ffi::F32> y) {
  const auto xd = x.dimensions();
  const auto wd = w.dimensions();
  if (xd.size() != 2 || wd.size() != 2 || xd[1] != wd[1] || xd[1] % kTileK != 0 || wd[0] % kPanel != 0 ||
      scale.element_count() != static_cast<size_t>(wd[0])) {
    return ffi::Error::InvalidArgument("amx_int8_matmul: expected x [M, K], w [N, K], scale [N], K % 32 == 0, N % 32 == 0");
  }
  Problem p;
  p.m_rows = xd[0];
  p.row_tiles = (p.m_rows + kTileRows - 1) / kTileRows;
  p.k = xd[1];
  p.n = wd[0];
  p.w = w.typed_data();
  p.scale = scale.typed_data();
  p.y = y->typed_data();
  std::vector<uint32_t> xt(p.row_tiles * (p.k / kTileK) * kTileWords);
  p.xt = xt.data();
  const float* xs = x.typed_data();
  codegemma::ParallelFor(pool, p.row_tiles, [&](int64_t tile) {
    PackActivations(xs, p.m_rows, p.k, tile * kTileRows, xt.data() + tile * (p.k / kTileK) * kTileWords);
  });
  const int64_t panels = p.n / kPanel;
  const int64_t units = (panels + kUnitPanels - 1) / kUnitPanels;
  codegemma::ParallelFor(pool, units, [&](int64_t unit) {
    MultiplyPanels(p, unit * kUnitPanels, std::min(kUnitPanels, panels - unit * kUnitPanels));
  });
  return ffi::Error::Success();
}

}  // namespace

// 1 when this process may use AMX tiles from now on (asks the kernel once), else 0.
extern "C" int CodegemmaAmxRequest() {
  constexpr long kArchReqXcompPerm = 0x1023;
  constexpr long kXfeatureXtiledata = 18;
  if (!__builtin_cpu_supports("amx-tile") || !__builtin_cpu_supports("amx-bf16")) return 0;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0 ? 1 : 0;
}

#pragma GCC pop_options

XLA_FFI_DEFINE_HANDLER_SYMBOL(CodegemmaAmxInt8Matmul, AmxInt8Matmul,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::S8>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());
