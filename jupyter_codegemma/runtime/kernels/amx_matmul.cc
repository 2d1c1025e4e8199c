// y[M, N] = x[M, K] · W[N, K]ᵀ · diag(scale[N]) for int8 weights, with Intel AMX (bfloat16).
//
// A prompt chunk multiplies many activation rows by each weight matrix, so it is bound by
// arithmetic, not by reading the weights. AMX multiplies 16×32 bfloat16 tiles into 16×16
// float32 tiles (TDPBF16PS); one core does more in one instruction than AVX-512 does in
// sixteen. Integers up to 256 are exact in bfloat16, so the int8 weights convert without
// loss and the float weights are never needed: only the activations are rounded (to
// bfloat16, a relative 2⁻⁹), and accumulation is float32.
//
// TDPBF16PS wants its second operand in "VNNI" layout: each 4-byte word holds a pair of
// consecutive k for one output column, i.e. B[k/2][n][2]. Reading W[N, K] as 32-bit words
// of k-pairs, a 16×32 block of W becomes a B tile by a 16×16 transpose of words. The
// weights are packed like that, 32 output columns (one "panel") at a time, by the thread
// that then multiplies every activation row by that panel; panels are the unit of work.
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
constexpr int64_t kPanel = 32;     // output columns per unit of work: two B tiles
constexpr int64_t kTileWords = kTileRows * 16;  // 32-bit words in one tile (1 KiB)

// Tiles 0–3 accumulate a 32×32 block of y, 4–5 hold 32 activation rows, 6–7 the panel.
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

// Activations [M, K] float32 -> [rows, K] bfloat16; rows M … rows-1 are zero padding.
void ConvertRows(const float* x, int64_t k, int64_t begin, int64_t end, int64_t m_rows, uint16_t* a) {
  for (int64_t m = begin; m < end; ++m) {
    uint16_t* out = a + m * k;
    if (m >= m_rows) {
      std::memset(out, 0, k * sizeof(uint16_t));
      continue;
    }
    const float* in = x + m * k;
    for (int64_t i = 0; i < k; i += kTileK) {
      _mm512_storeu_si512(out + i, ToBf16(_mm512_loadu_ps(in + i), _mm512_loadu_ps(in + i + 16)));
    }
  }
}

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

// Weight rows [n0, n0 + 32) -> panel[K/32][2][16 pairs][16 columns] of bfloat16 pairs.
void PackPanel(const int8_t* w, int64_t k, int64_t n0, uint32_t* panel) {
  for (int64_t kb = 0; kb < k / kTileK; ++kb) {
    for (int half = 0; half < 2; ++half) {
      __m512i rows[16];
      for (int c = 0; c < 16; ++c) {
        const int8_t* src = w + (n0 + half * 16 + c) * k + kb * kTileK;
        const __m512 low = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)src)));
        const __m512 high = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(src + 16))));
        rows[c] = ToBf16(low, high);  // word p = k-pair p of column c
      }
      Transpose16x16(rows);  // rows[p] = k-pair p of all 16 columns: one B-tile row
      uint32_t* tile = panel + (kb * 2 + half) * kTileWords;
      for (int p = 0; p < 16; ++p) _mm512_storeu_si512(tile + p * 16, rows[p]);
    }
  }
}

struct Problem {
  const uint16_t* a;  // [padded_rows, K] bfloat16
  int64_t m_rows, padded_rows, k, n;
  const int8_t* w;
  const float* scale;
  float* y;
};

// y[:, n0 : n0 + 32] for every activation row.
void MultiplyPanel(const Problem& p, int64_t n0) {
  thread_local std::vector<uint32_t> panel;
  panel.resize(p.k / kTileK * 2 * kTileWords);
  PackPanel(p.w, p.k, n0, panel.data());
  ConfigureTiles();
  alignas(64) float block[32 * kPanel];
  const __m512 scale_low = _mm512_loadu_ps(p.scale + n0);
  const __m512 scale_high = _mm512_loadu_ps(p.scale + n0 + 16);
  const int64_t a_stride = p.k * sizeof(uint16_t);
  for (int64_t m0 = 0; m0 < p.padded_rows; m0 += 2 * kTileRows) {
    const bool two = m0 + kTileRows < p.padded_rows;  // a second 16-row A tile
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    const uint16_t* a0 = p.a + m0 * p.k;
    const uint16_t* a1 = a0 + kTileRows * p.k;
    for (int64_t kb = 0; kb < p.k / kTileK; ++kb) {
      _tile_loadd(6, panel.data() + (kb * 2) * kTileWords, 64);
      _tile_loadd(7, panel.data() + (kb * 2 + 1) * kTileWords, 64);
      _tile_loadd(4, a0 + kb * kTileK, a_stride);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      if (two) {
        _tile_loadd(5, a1 + kb * kTileK, a_stride);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
      }
    }
    _tile_stored(0, block, kPanel * sizeof(float));
    _tile_stored(1, block + 16, kPanel * sizeof(float));
    if (two) {
      _tile_stored(2, block + 16 * kPanel, kPanel * sizeof(float));
      _tile_stored(3, block + 16 * kPanel + 16, kPanel * sizeof(float));
    }
    const int64_t end = std::min(m0 + 2 * kTileRows, p.m_rows);
    for (int64_t m = m0; m < end; ++m) {
      const float* row = block + (m - m0) * kPanel;
      float* out = p.y + m * p.n + n0;
      _mm512_storeu_ps(out, _mm512_mul_ps(_mm512_load_ps(row), scale_low));
      _mm512_storeu_ps(out + 16, _mm512_mul_ps(_mm512_load_ps(row + 16), scale_high));
    }
  }
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
  p.padded_rows = (p.m_rows + kTileRows - 1) / kTileRows * kTileRows;
  p.k = xd[1];
  p.n = wd[0];
  p.w = w.typed_data();
  p.scale = scale.typed_data();
  p.y = y->typed_data();
  std::vector<uint16_t> a(p.padded_rows * p.k);
  p.a = a.data();
  const float* xs = x.typed_data();
  constexpr int64_t kConvertRows = 64;
  codegemma::ParallelFor(pool, (p.padded_rows + kConvertRows - 1) / kConvertRows, [&](int64_t unit) {
    const int64_t begin = unit * kConvertRows;
    ConvertRows(xs, p.k, begin, std::min(begin + kConvertRows, p.padded_rows), p.m_rows, a.data());
  });
  codegemma::ParallelFor(pool, p.n / kPanel, [&](int64_t unit) { MultiplyPanel(p, unit * kPanel); });
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
