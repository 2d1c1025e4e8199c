// y[M, N] = x[M, K] · W[N, K]ᵀ · diag(scale[N]) for int8 weights on CPUs with AVX2 and FMA but
// no AVX-512 (most laptops' Intel Core parts, AMD before Zen 4): decoding (one row) and prompt
// chunks and draft checks (several rows) alike.
//
// The activations are rounded to int8 blocks of 64 exactly as the AVX-512 kernels round them
// (quantize_block.h), so every kernel computes
//
//   y[m, n] = scale[n] · Σ_b sx[m, b] · Σ_{k in b} W[n, k] · q[m, k]
//
// with exact integer inner sums; only the float summation of the blocks differs.
//
// AVX2 has no VPDPBUSD. VPMADDUBSW multiplies 32 unsigned by 32 signed bytes and adds adjacent
// pairs into 16 int16s, saturating; with |q| as the unsigned operand and W with q's sign
// applied (VPSIGNB) as the signed one, every pair sums q·W and stays within 2 · 127 · 127 =
// 32 258 (both sides are quantized to ±127), so nothing saturates. VPMADDWD by ones widens
// the pairs to int32. That is four instructions per 32 products, for any number of rows.
//
// Prompt chunks are bound by arithmetic: the cores share small chunks of weight rows; within one,
// activation rows go in blocks that stay in the L2 cache while the chunk's weight rows pass over
// them, and each inner step multiplies kWeightRows weight rows by up to kActRows activation rows,
// loading each once. Decoding and draft checks are bound by memory: each core takes one contiguous
// range of weight rows (ParallelRanges), one sequential stream. On the 2-core EPYC, Gemma 3 270M's
// 72 layer products of a decode step: 12.1-14.4 ms in chunks of 64 rows handed out in turn, 9.6-11.2 ms.
//
// Decoding (one activation row) reads the weights once, so it is bound by memory: it goes one
// weight row at a time, which reads memory in one sequential stream, and asks for each cache line
// kPrefetchBytes ahead. Four rows at a time (four streams 640 bytes apart for Gemma 3 270M) read
// the 168 MB output head at 6.2 GB/s on a 2-core AMD EPYC (AVX2); one stream with the prefetch
// at 13-14 GB/s, near the 17.5 GB/s a plain read of the same memory reaches. The sums are
// formed in the same order either way, so every tile shape gives the same bits.

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "avx2_sum.h"
#include "int8_matmul_signature.h"
#include "parallel_for.h"
#include "quantize_block.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

// Only this file's own functions use AVX2 (the library also loads on CPUs without it).
#pragma GCC push_options
#pragma GCC target("avx2,fma")

namespace {

constexpr int64_t kBlock = codegemma::kQuantBlock;
constexpr int64_t kChunkRows = 64;   // weight rows per unit of work shared between threads
constexpr int64_t kRowBlock = 32;    // activation rows per pass over a chunk (≤ 128 KiB at K = 2048)
// Register tiles, weight rows × activation rows (decoding: 1 × 1). Draft checks (bound by memory) read
// two weight rows at a time for four activation rows. Prompt chunks (bound by arithmetic) take four
// weight rows for two activation rows: measured in one process, alternating, on Gemma 3 270M's four
// layer products at 512 rows (2-core AMD EPYC, AVX2): 2 × 4 49-61 ms, 4 × 2 43-56 ms (-5 to -13 %
// in three runs); 3 × 3, 6 × 2, 8 × 1 and other chunk sizes no better. Every shape sums in the
// same order, so the bits do not change.
template <bool Prefetch> constexpr int kWeightRows = Prefetch ? 2 : 4;
template <bool Prefetch> constexpr int kActRows = Prefetch ? 4 : 2;
constexpr int64_t kPrefetchBytes = 1024;  // how far ahead of a row's reads the next cache line is asked for
constexpr int64_t kPrefetchedRows = 16;   // up to this many activation rows, the weights are prefetched

struct Quantized {
  std::vector<int8_t> q;          // [M, K]
  std::vector<int8_t> magnitude;  // [M, K]: |q|, VPMADDUBSW's unsigned operand
  std::vector<float> scale;       // [M, K / kBlock]
};

Quantized QuantizeRows(const float* x, int64_t m_rows, int64_t k) {
  const int64_t blocks = k / kBlock;
  Quantized out{std::vector<int8_t>(m_rows * k), std::vector<int8_t>(m_rows * k),
                std::vector<float>(m_rows * blocks)};
  for (int64_t m = 0; m < m_rows; ++m) {
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t at = m * k + b * kBlock;
      out.scale[m * blocks + b] = codegemma::QuantizeBlockAvx2(x + at, out.q.data() + at);
      for (int64_t i = 0; i < kBlock; i += 32) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(out.q.data() + at + i));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.magnitude.data() + at + i), _mm256_abs_epi8(v));
      }
    }
  }
  return out;
}

inline __m256i Load(const int8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

struct Problem {
  const Quantized* xq;
  int64_t k, n;
  const int8_t* w;
  const float* scale;
  float* y;
};

// The sums of one block of 64 columns, dot[j][t] (8 int32 lanes each), for weight rows w + j·k and
// activation rows q + t·k (|q| at mag + t·k); every pointer at the block's first column. With Prefetch,
// asks for each weight row's cache line kPrefetchBytes ahead (a few activation rows: bound by memory).
template <int R, int T, bool Prefetch>
inline void BlockSums(const int8_t* w, int64_t k, const int8_t* q, const int8_t* mag, __m256i ones,
                      __m256i dot[R][T]) {
  for (int j = 0; j < R; ++j)
    for (int t = 0; t < T; ++t) dot[j][t] = _mm256_setzero_si256();
  if (Prefetch)
    for (int j = 0; j < R; ++j) _mm_prefetch(reinterpret_cast<const char*>(w + j * k + kPrefetchBytes), _MM_HINT_T0);
  for (int64_t half = 0; half < kBlock; half += 32) {
    __m256i wv[R];
    for (int j = 0; j < R; ++j) wv[j] = Load(w + j * k + half);
    for (int t = 0; t < T; ++t) {
      const __m256i qv = Load(q + t * k + half);
      const __m256i av = Load(mag + t * k + half);
      for (int j = 0; j < R; ++j) {
        const __m256i pairs = _mm256_maddubs_epi16(av, _mm256_sign_epi8(wv[j], qv));
        dot[j][t] = _mm256_add_epi32(dot[j][t], _mm256_madd_epi16(pairs, ones));
      }
    }
  }
}

// BlockSums of the prompt tile, 4 weight rows × 2 activation rows, written out in assembly: the same
// instructions as the template, in the same order per lane, so the same bits.
// GCC keeps the tile's 8 block sums, 8 float sums and the operands in more than the 16 ymm registers
// there are and spills block sums inside the inner loop; here the 8 block sums, both rows' |q|, one
// weight vector, two temporaries and the ones take 14, q is read straight from memory by VPSIGNB,
// and the first half-block writes the sums (no zeroing). Measured in one process, alternating, on
// Gemma 3 270M's four layer products at 512 rows, one core of the 2-core AMD EPYC (AVX2): 12-18 %
// less time than the template (median of 12 rounds 92-97 against 105-121 ms).
template <>
inline void BlockSums<4, 2, false>(const int8_t* w, int64_t k, const int8_t* q, const int8_t* mag, __m256i ones,
                                    __m256i dot[4][2]) {
  __m256i d00, d01, d10, d11, d20, d21, d30, d31, mag0, mag1, wv, t0, t1;
  const int8_t* w2 = w + 2 * k;  // rows 2 and 3 (x86 addressing scales an index by 1, 2, 4 or 8 only)
  // One weight row against both activation rows at byte offset OFF; SUM writes or adds the products.
#define CODEGEMMA_ROW(ROW, OFF, D0, D1, SUM)                                                          \
  "vmovdqu " OFF ROW ", %[wv]\n\t"                                                                    \
  "vpsignb " OFF "(%[q]), %[wv], %[t0]\n\t"                                                           \
  "vpsignb " OFF "(%[q],%[k]), %[wv], %[t1]\n\t"                                                      \
  "vpmaddubsw %[t0], %[mag0], %[t0]\n\t"                                                              \
  "vpmaddubsw %[t1], %[mag1], %[t1]\n\t" SUM(D0, D1)
#define CODEGEMMA_WRITE(D0, D1) "vpmaddwd %[ones], %[t0], %[" D0 "]\n\tvpmaddwd %[ones], %[t1], %[" D1 "]\n\t"
#define CODEGEMMA_ADD(D0, D1)                                                                          \
  "vpmaddwd %[ones], %[t0], %[t0]\n\tvpmaddwd %[ones], %[t1], %[t1]\n\t"                              \
  "vpaddd %[t0], %[" D0 "], %[" D0 "]\n\tvpaddd %[t1], %[" D1 "], %[" D1 "]\n\t"
#define CODEGEMMA_HALF(OFF, SUM)                                                                       \
  "vmovdqu " OFF "(%[mag]), %[mag0]\n\t"                                                              \
  "vmovdqu " OFF "(%[mag],%[k]), %[mag1]\n\t"                                                         \
  CODEGEMMA_ROW("(%[w])", OFF, "d00", "d01", SUM) CODEGEMMA_ROW("(%[w],%[k])", OFF, "d10", "d11", SUM) \
  CODEGEMMA_ROW("(%[w2])", OFF, "d20", "d21", SUM) CODEGEMMA_ROW("(%[w2],%[k])", OFF, "d30", "d31", SUM)
  asm(CODEGEMMA_HALF("0", CODEGEMMA_WRITE) CODEGEMMA_HALF("32", CODEGEMMA_ADD)
      : [d00] "=&x"(d00), [d01] "=&x"(d01), [d10] "=&x"(d10), [d11] "=&x"(d11), [d20] "=&x"(d20),
        [d21] "=&x"(d21), [d30] "=&x"(d30), [d31] "=&x"(d31), [mag0] "=&x"(mag0), [mag1] "=&x"(mag1),
        [wv] "=&x"(wv), [t0] "=&x"(t0), [t1] "=&x"(t1)
      : [w] "r"(w), [w2] "r"(w2), [q] "r"(q), [mag] "r"(mag), [k] "r"(k), [ones] "x"(ones)
      : "memory");
#undef CODEGEMMA_ROW
#undef CODEGEMMA_WRITE
#undef CODEGEMMA_ADD
#undef CODEGEMMA_HALF
  dot[0][0] = d00, dot[0][1] = d01, dot[1][0] = d10, dot[1][1] = d11;
  dot[2][0] = d20, dot[2][1] = d21, dot[3][0] = d30, dot[3][1] = d31;
}

// y[m .. m+T, r .. r+R] for weight rows r … r+R-1 and activation rows m … m+T-1.
template <int R, int T, bool Prefetch>
inline void Tile(const Problem& p, int64_t r, int64_t m) {
  const int64_t k = p.k, blocks = k / kBlock;
  const __m256i ones = _mm256_set1_epi16(1);
  const int8_t* q = p.xq->q.data() + m * k;
  const int8_t* mag = p.xq->magnitude.data() + m * k;
  const float* sx = p.xq->scale.data() + m * blocks;
  const int8_t* w = p.w + r * k;
  __m256 acc[R][T];
  for (int j = 0; j < R; ++j)
    for (int t = 0; t < T; ++t) acc[j][t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < blocks; ++b) {
    __m256i dot[R][T];
    BlockSums<R, T, Prefetch>(w + b * kBlock, k, q + b * kBlock, mag + b * kBlock, ones, dot);
    for (int t = 0; t < T; ++t) {
      const __m256 s = _mm256_set1_ps(sx[t * blocks + b]);
      for (int j = 0; j < R; ++j) acc[j][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot[j][t]), s, acc[j][t]);
    }
  }
  for (int j = 0; j < R; ++j)
    for (int t = 0; t < T; ++t) p.y[(m + t) * p.n + r + j] = p.scale[r + j] * codegemma::HorizontalSum(acc[j][t]);
}

// Weight rows r … r+R-1 times activation rows [m_begin, m_end).
template <int R, bool Prefetch>
void RowsTimesActivations(const Problem& p, int64_t r, int64_t m_begin, int64_t m_end) {
  constexpr int T = kActRows<Prefetch>;
  int64_t m = m_begin;
  for (; m + T <= m_end; m += T) Tile<R, T, Prefetch>(p, r, m);
  switch (m_end - m) {
    case 3: Tile<R, 3, Prefetch>(p, r, m); break;
    case 2: Tile<R, 2, Prefetch>(p, r, m); break;
    case 1: Tile<R, 1, Prefetch>(p, r, m); break;
    default: break;
  }
}

template <bool Prefetch>
void RowBlocks(const Problem& p, int64_t m_rows, int64_t row_begin, int64_t row_end) {
  for (int64_t m0 = 0; m0 < m_rows; m0 += kRowBlock) {
    const int64_t m1 = std::min(m_rows, m0 + kRowBlock);
    int64_t r = row_begin;
    constexpr int R = kWeightRows<Prefetch>;
    for (; r + R <= row_end; r += R) RowsTimesActivations<R, Prefetch>(p, r, m0, m1);
    for (; r < row_end; ++r) RowsTimesActivations<1, Prefetch>(p, r, m0, m1);
  }
}

void MultiplyChunk(const Problem& p, int64_t m_rows, int64_t row_begin, int64_t row_end) {
  if (m_rows == 1) {  // decoding: bound by reading the weights, so one sequential stream
    for (int64_t r = row_begin; r < row_end; ++r) Tile<1, 1, true>(p, r, 0);
    return;
  }
  // Draft checks (8 rows) are still bound by memory, and the prefetch halves their time on the output
  // head (45 -> 20 ms at 4 rows); prompt chunks are bound by arithmetic, and it only costs them.
  if (m_rows <= kPrefetchedRows) {
    RowBlocks<true>(p, m_rows, row_begin, row_end);
  } else {
    RowBlocks<false>(p, m_rows, row_begin, row_end);
  }
}

ffi::Error Avx2Int8Matmul(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::S8> w,
                          ffi::Buffer<ffi::F32> scale, ffi::Buffer<ffi::S32> layer, ffi::ResultBuffer<ffi::F32> y) {
  const auto xd = x.dimensions();
  codegemma::LayerWeights lw;
  if (!codegemma::SelectLayer(w, scale, layer, &lw) || xd.size() != 2 || xd[1] != lw.k || xd[1] % kBlock != 0) {
    return ffi::Error::InvalidArgument(
        "avx2_int8_matmul: expected x [M, K], w [N, K] or [G, N, K], scale [N] or [G, N], a layer in the stack, "
        "K % 64 == 0");
  }
  const int64_t m_rows = xd[0];
  const Quantized xq = QuantizeRows(x.typed_data(), m_rows, xd[1]);
  const Problem p{&xq, xd[1], lw.n, lw.w, lw.scale, y->typed_data()};
  if (m_rows <= kPrefetchedRows) {  // bound by memory: one stream of weight rows per core
    codegemma::ParallelRanges(pool, p.n, kChunkRows, [&](int64_t begin, int64_t end) {
      MultiplyChunk(p, m_rows, begin, end);
    });
  } else {  // bound by arithmetic: small chunks balance the cores
    codegemma::ParallelFor(pool, (p.n + kChunkRows - 1) / kChunkRows, [&](int64_t chunk) {
      const int64_t begin = chunk * kChunkRows;
      MultiplyChunk(p, m_rows, begin, std::min(p.n, begin + kChunkRows));
    });
  }
  return ffi::Error::Success();
}

}  // namespace

#pragma GCC pop_options

XLA_FFI_DEFINE_HANDLER_SYMBOL(CodegemmaAvx2Int8Matmul, Avx2Int8Matmul, codegemma::Int8MatmulSignature());
