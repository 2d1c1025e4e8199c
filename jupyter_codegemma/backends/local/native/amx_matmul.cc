// y[M, N] = x[M, K] · W[N, K]ᵀ · diag(scale[N]) for int8 weights, with Intel AMX (int8 tiles).
//
// A prompt chunk multiplies many activation rows by each weight matrix, so it is bound by
// arithmetic, not by reading the weights. AMX multiplies a 16×64 int8 tile by a 64×16 one into
// a 16×16 int32 tile (TDPBSSD) in one instruction: 16 384 multiply-adds, where AVX-512 VNNI
// does 64. The activations are rounded to int8 exactly as the VNNI kernel rounds them
// (quantize_block.h: blocks of 64 along K, one scale each), so a prompt chunk computes what
// decoding the same tokens one at a time computes; only the float summation order differs.
//
// The kernel computes yᵀ = W · xᵀ one 64-wide block of K at a time: TDPBSSD reads its first
// operand row-major, as W is stored, so weight tiles load straight from the weights, with no
// conversion or copy. The second operand must be in "VNNI" layout (each 4-byte word holds 4
// consecutive k of one activation row): the activations are quantized into that layout once
// per call (a 16×16 transpose of words per tile). Each block's int32 tile is scaled by its
// activation block scales and summed in float32; each finished 16×16 tile of yᵀ is
// transposed back into rows of y and scaled by the weight rows' scales. Units of work are
// groups of 16-row weight tiles.
//
// Linux hands out AMX state only to processes that ask (arch_prctl ARCH_REQ_XCOMP_PERM);
// without that, the first tile instruction kills the process. CodegemmaAmxRequest asks, and
// __init__.py registers this kernel only when it said yes.

#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "parallel_for.h"
#include "quantize_block.h"
#include "int8_matmul_signature.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

// Only this file's own functions may use AMX (not XLA's inline headers).
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,amx-tile,amx-int8")

namespace {

constexpr int64_t kTileRows = 16;                   // rows of every tile
constexpr int64_t kBlock = codegemma::kQuantBlock;  // int8 values along K in one tile row (64 bytes)
constexpr int64_t kTileBytes = kTileRows * kBlock;  // one tile: 1 KiB
constexpr int64_t kUnitTiles = 8;                   // weight tiles (of 16 rows) per unit of work

// Tiles 0–1 hold int32 results (two in flight), 2–3 weight rows, 4 activation rows.
struct TileConfig {
  uint8_t palette_id = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

void ConfigureTiles() {
  TileConfig config;
  for (int t = 0; t < 5; ++t) {
    config.rows[t] = kTileRows;
    config.colsb[t] = 64;
  }
  _tile_loadconfig(&config);
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

struct Problem {
  const int8_t* xq;   // [row tiles][K/64][1 KiB]: activations, VNNI layout
  const float* xs;    // [row tiles][K/64][16]: their block scales (0 for padding rows)
  int64_t m_rows, row_tiles, k, n;
  const int8_t* w;
  const float* scale;
  float* y;
};

// Activation rows [m0, m0 + 16) -> their tiles and scales; rows at or past m_rows are zero.
void QuantizeTile(const float* x, int64_t m_rows, int64_t k, int64_t m0, int8_t* tiles, float* scales) {
  alignas(64) int8_t rows[kTileRows][kBlock];
  for (int64_t b = 0; b < k / kBlock; ++b) {
    float* s = scales + b * kTileRows;
    for (int c = 0; c < kTileRows; ++c) {
      if (m0 + c < m_rows) {
        s[c] = codegemma::QuantizeBlock(x + (m0 + c) * k + b * kBlock, rows[c]);
      } else {
        s[c] = 0.0f;
        _mm512_store_si512(rows[c], _mm512_setzero_si512());
      }
    }
    __m512i words[16];  // words[c]: dword p = k-quad p of row c
    for (int c = 0; c < 16; ++c) words[c] = _mm512_load_si512(rows[c]);
    Transpose16x16(words);  // words[p] = k-quad p of all 16 rows: one tile row
    int8_t* tile = tiles + b * kTileBytes;
    for (int p = 0; p < 16; ++p) _mm512_storeu_si512(tile + p * 64, words[p]);
  }
}

// acc[r] (over 16 activation rows) of yᵀ's 16×16 tile -> y[m0 …, n0 …], times the weight scales.
void StoreTransposed(const Problem& p, __m512 acc[16], int64_t n0, int64_t m0) {
  __m512i rows[16];
  for (int i = 0; i < 16; ++i) rows[i] = _mm512_castps_si512(acc[i]);
  Transpose16x16(rows);  // rows[c] = activation row m0 + c over the 16 output columns
  const __m512 scale = _mm512_loadu_ps(p.scale + n0);
  for (int c = 0; c < 16 && m0 + c < p.m_rows; ++c) {
    _mm512_storeu_ps(p.y + (m0 + c) * p.n + n0, _mm512_mul_ps(_mm512_castsi512_ps(rows[c]), scale));
  }
}

// Adds one block's int32 tile (stored row-major in `block`) into acc, times the block scales.
inline void Accumulate(const int32_t* block, __m512 activation_scales, __m512 acc[16]) {
  for (int r = 0; r < 16; ++r) {
    const __m512 v = _mm512_cvtepi32_ps(_mm512_load_si512(block + r * 16));
    acc[r] = _mm512_fmadd_ps(v, activation_scales, acc[r]);
  }
}

// yᵀ rows [n0, n0 + 16) (output columns of y) for every activation row.
void MultiplyTile(const Problem& p, int64_t n0) {
  alignas(64) int32_t block[2][kTileRows * 16];
  const int64_t blocks = p.k / kBlock;
  const int8_t* w = p.w + n0 * p.k;
  for (int64_t t = 0; t < p.row_tiles; ++t) {
    const int8_t* xq = p.xq + t * blocks * kTileBytes;
    const float* xs = p.xs + t * blocks * kTileRows;
    __m512 acc[16];
    for (int r = 0; r < 16; ++r) acc[r] = _mm512_setzero_ps();
    // Two result tiles alternate, so one block's products are summed while the next computes.
    for (int64_t b = 0; b < blocks; ++b) {
      const int slot = b & 1;
      if (slot == 0) {
        _tile_zero(0);
        _tile_loadd(2, w + b * kBlock, p.k);
        _tile_loadd(4, xq + b * kTileBytes, 64);
        _tile_dpbssd(0, 2, 4);
        _tile_stored(0, block[0], 64);
      } else {
        _tile_zero(1);
        _tile_loadd(3, w + b * kBlock, p.k);
        _tile_loadd(4, xq + b * kTileBytes, 64);
        _tile_dpbssd(1, 3, 4);
        _tile_stored(1, block[1], 64);
      }
      Accumulate(block[slot], _mm512_loadu_ps(xs + b * kTileRows), acc);
    }
    StoreTransposed(p, acc, n0, t * kTileRows);
  }
}

// Weight tiles [first, first + count) of 16 rows: one unit of work. Loading the tile
// configuration and releasing the tiles cost about a microsecond, so once per unit.
void MultiplyTiles(const Problem& p, int64_t first, int64_t count) {
  ConfigureTiles();
  for (int64_t i = first; i < first + count; ++i) MultiplyTile(p, i * kTileRows);
  _tile_release();
}

ffi::Error AmxInt8Matmul(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::S8> w,
                         ffi::Buffer<ffi::F32> scale, ffi::Buffer<ffi::S32> layer, ffi::ResultBuffer<ffi::F32> y) {
  const auto xd = x.dimensions();
  codegemma::LayerWeights lw;
  if (!codegemma::SelectLayer(w, scale, layer, &lw) || xd.size() != 2 || xd[1] != lw.k || xd[1] % kBlock != 0 ||
      lw.n % kTileRows != 0) {
    return ffi::Error::InvalidArgument(
        "amx_int8_matmul: expected x [M, K], w [N, K] or [G, N, K], scale [N] or [G, N], a layer in the stack, "
        "K % 64 == 0, N % 16 == 0");
  }
  Problem p;
  p.m_rows = xd[0];
  p.row_tiles = (p.m_rows + kTileRows - 1) / kTileRows;
  p.k = xd[1];
  p.n = lw.n;
  p.w = lw.w;
  p.scale = lw.scale;
  p.y = y->typed_data();
  const int64_t blocks = p.k / kBlock;
  std::vector<int8_t> xq(p.row_tiles * blocks * kTileBytes);
  std::vector<float> xs(p.row_tiles * blocks * kTileRows);
  p.xq = xq.data();
  p.xs = xs.data();
  const float* xf = x.typed_data();
  codegemma::ParallelFor(pool, p.row_tiles, [&](int64_t t) {
    QuantizeTile(xf, p.m_rows, p.k, t * kTileRows, xq.data() + t * blocks * kTileBytes,
                 xs.data() + t * blocks * kTileRows);
  });
  const int64_t tiles = p.n / kTileRows;
  const int64_t units = (tiles + kUnitTiles - 1) / kUnitTiles;
  codegemma::ParallelFor(pool, units, [&](int64_t unit) {
    MultiplyTiles(p, unit * kUnitTiles, std::min(kUnitTiles, tiles - unit * kUnitTiles));
  });
  return ffi::Error::Success();
}

}  // namespace

// 1 when this process may use AMX tiles from now on (asks the kernel once), else 0.
extern "C" int CodegemmaAmxRequest() {
  constexpr long kArchReqXcompPerm = 0x1023;
  constexpr long kXfeatureXtiledata = 18;
  if (!__builtin_cpu_supports("amx-tile") || !__builtin_cpu_supports("amx-int8")) return 0;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0 ? 1 : 0;
}

#pragma GCC pop_options

XLA_FFI_DEFINE_HANDLER_SYMBOL(CodegemmaAmxInt8Matmul, AmxInt8Matmul, codegemma::Int8MatmulSignature());
