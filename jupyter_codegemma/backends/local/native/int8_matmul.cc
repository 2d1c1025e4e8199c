// y[M, N] = x[M, K] · W[N, K]ᵀ · diag(scale[N]) for int8 weights W with one scale per output row.
//
// Decoding multiplies one activation row by every weight matrix: the speed is how fast the
// weights stream from memory, so they are read as int8 (a quarter of float32) and the
// arithmetic must keep up with that stream on two cores. It does with AVX-512 VNNI:
// VPDPBUSD multiplies 64 unsigned bytes by 64 signed bytes and accumulates into 16 int32s in
// one instruction. The activations are therefore rounded to int8 too, in blocks of 64 along K
// with one float scale per block (as llama.cpp rounds them to 8-bit blocks), and
//
//   y[m, n] = scale[n] · Σ_b sx[m, b] · Σ_{k in b} W[n, k] · q[m, k].
//
// VPDPBUSD wants one unsigned operand: W xor 0x80 is W + 128 read as unsigned, and the extra
// 128 · Σ_k q[m, k] · sx[m, b(k)] is the same for every row n, so it is subtracted once.
//
// Single rows (decoding) come here on CPUs with AVX-512 VNNI, and everything there without AMX;
// amx_matmul.cc multiplies several rows at once where it can, avx2_matmul.cc everything on
// CPUs with AVX2 alone.
//
// A few activation rows (decoding, draft checks) are bound by reading the weights: each core takes
// one contiguous range of weight rows (ParallelRanges) and reads it one row at a time, one sequential
// stream, asking for each cache line kPrefetchBytes ahead, as avx2_matmul.cc does. Four rows at a time
// in chunks of 256 handed out in turn (four streams per core) read Gemma 3 270M's 72 layer products of
// a decode step at 9.5 GB/s on a 2-core Intel Xeon with AMX (10.6 ms), where the AVX2 kernel's one
// stream reached 12.2 GB/s. Prompt chunks (bound by arithmetic) keep the four-row tiles in chunks.
// Each (weight row, activation row) sums its blocks in the same order on either path: the same bits.

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "parallel_for.h"
#include "quantize_block.h"
#include "int8_matmul_signature.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

// Only this file's own functions use AVX-512 (the library also loads on CPUs without it).
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,fma")

namespace {

constexpr int64_t kBlock = codegemma::kQuantBlock;  // activation block: one VPDPBUSD
constexpr int64_t kRows = 4;       // weight rows per inner step (4 accumulators)
constexpr int64_t kChunkRows = 256;  // rows per unit of work shared between threads
constexpr int64_t kStreamedRows = 16;  // up to this many activation rows, the weights are streamed
constexpr int64_t kMinRange = 64;      // the shortest range of weight rows a core streams
constexpr int64_t kPrefetchBytes = 1024;  // how far ahead of a row's reads the next cache line is asked for

struct Quantized {
  std::vector<int8_t> q;       // [M, K]
  std::vector<float> scale;    // [M, K / kBlock]
  std::vector<float> offset;   // [M]: 128 · Σ_b sx[m, b] · Σ_{k in b} q[m, k]
};

Quantized QuantizeRows(const float* x, int64_t m_rows, int64_t k) {
  const int64_t blocks = k / kBlock;
  Quantized out{std::vector<int8_t>(m_rows * k), std::vector<float>(m_rows * blocks),
                std::vector<float>(m_rows, 0.0f)};
  for (int64_t m = 0; m < m_rows; ++m) {
    for (int64_t b = 0; b < blocks; ++b) {
      int8_t* qb = out.q.data() + m * k + b * kBlock;
      const float s = codegemma::QuantizeBlock(x + m * k + b * kBlock, qb);
      int32_t sum = 0;
      for (int64_t i = 0; i < kBlock; ++i) sum += qb[i];
      out.scale[m * blocks + b] = s;
      out.offset[m] += 128.0f * s * static_cast<float>(sum);
    }
  }
  return out;
}

// Rows [row_begin, row_end) of the output, for every activation row.
void MatmulRows(const Quantized& xq, int64_t m_rows, int64_t k, const int8_t* w, const float* scale,
                float* y, int64_t n, int64_t row_begin, int64_t row_end) {
  const int64_t blocks = k / kBlock;
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  const __m512i zero = _mm512_setzero_si512();
  int64_t r = row_begin;
  for (; r + kRows <= row_end; r += kRows) {
    const int8_t* w0 = w + r * k;
    for (int64_t m = 0; m < m_rows; ++m) {
      const int8_t* q = xq.q.data() + m * k;
      const float* sx = xq.scale.data() + m * blocks;
      __m512 acc[kRows] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
      for (int64_t b = 0; b < blocks; ++b) {
        const __m512i qv = _mm512_loadu_si512(q + b * kBlock);
        const __m512 sb = _mm512_set1_ps(sx[b]);
        for (int64_t j = 0; j < kRows; ++j) {
          const __m512i wv = _mm512_xor_si512(_mm512_loadu_si512(w0 + j * k + b * kBlock), flip);
          const __m512i dot = _mm512_dpbusd_epi32(zero, wv, qv);
          acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), sb, acc[j]);
        }
      }
      for (int64_t j = 0; j < kRows; ++j) {
        y[m * n + r + j] = scale[r + j] * (_mm512_reduce_add_ps(acc[j]) - xq.offset[m]);
      }
    }
  }
  for (; r < row_end; ++r) {
    const int8_t* wr = w + r * k;
    for (int64_t m = 0; m < m_rows; ++m) {
      const int8_t* q = xq.q.data() + m * k;
      const float* sx = xq.scale.data() + m * blocks;
      __m512 acc = _mm512_setzero_ps();
      for (int64_t b = 0; b < blocks; ++b) {
        const __m512i wv = _mm512_xor_si512(_mm512_loadu_si512(wr + b * kBlock), flip);
        const __m512i dot = _mm512_dpbusd_epi32(zero, wv, _mm512_loadu_si512(q + b * kBlock));
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_set1_ps(sx[b]), acc);
      }
      y[m * n + r] = scale[r] * (_mm512_reduce_add_ps(acc) - xq.offset[m]);
    }
  }
}

// Rows [row_begin, row_end) of the output for at most kStreamedRows activation rows (M of them, or
// m_rows where M is 0), one weight row at a time: each block of it is loaded once for every
// activation row, and the cache line kPrefetchBytes ahead is asked for.
template <int64_t M>
void StreamRows(const Quantized& xq, int64_t m_rows, int64_t k, const int8_t* w, const float* scale,
                float* y, int64_t n, int64_t row_begin, int64_t row_end) {
  const int64_t rows = M ? M : m_rows;
  const int64_t blocks = k / kBlock;
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  const __m512i zero = _mm512_setzero_si512();
  for (int64_t r = row_begin; r < row_end; ++r) {
    const int8_t* wr = w + r * k;
    __m512 acc[M ? M : kStreamedRows];
    for (int64_t m = 0; m < rows; ++m) acc[m] = _mm512_setzero_ps();
    for (int64_t b = 0; b < blocks; ++b) {
      _mm_prefetch(reinterpret_cast<const char*>(wr + b * kBlock + kPrefetchBytes), _MM_HINT_T0);
      const __m512i wv = _mm512_xor_si512(_mm512_loadu_si512(wr + b * kBlock), flip);
      for (int64_t m = 0; m < rows; ++m) {
        const __m512i dot = _mm512_dpbusd_epi32(zero, wv, _mm512_loadu_si512(xq.q.data() + m * k + b * kBlock));
        acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_set1_ps(xq.scale[m * blocks + b]), acc[m]);
      }
    }
    for (int64_t m = 0; m < rows; ++m) y[m * n + r] = scale[r] * (_mm512_reduce_add_ps(acc[m]) - xq.offset[m]);
  }
}

ffi::Error Int8Matmul(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::S8> w,
                      ffi::Buffer<ffi::F32> scale, ffi::Buffer<ffi::S32> layer, ffi::ResultBuffer<ffi::F32> y) {
  const auto xd = x.dimensions();
  codegemma::LayerWeights lw;
  if (!codegemma::SelectLayer(w, scale, layer, &lw) || xd.size() != 2 || xd[1] != lw.k || xd[1] % kBlock != 0) {
    return ffi::Error::InvalidArgument(
        "int8_matmul: expected x [M, K], w [N, K] or [G, N, K], scale [N] or [G, N], a layer in the stack, K % 64 == 0");
  }
  const int64_t m_rows = xd[0], k = xd[1], n = lw.n;
  const Quantized xq = QuantizeRows(x.typed_data(), m_rows, k);
  const int8_t* weights = lw.w;
  const float* scales = lw.scale;
  float* out = y->typed_data();
  if (m_rows <= kStreamedRows) {  // bound by memory: one stream of weight rows per core
    codegemma::ParallelRanges(pool, n, kMinRange, [&](int64_t begin, int64_t end) {
      if (m_rows == 1) {
        StreamRows<1>(xq, m_rows, k, weights, scales, out, n, begin, end);
      } else {
        StreamRows<0>(xq, m_rows, k, weights, scales, out, n, begin, end);
      }
    });
    return ffi::Error::Success();
  }
  codegemma::ParallelFor(pool, (n + kChunkRows - 1) / kChunkRows, [&](int64_t chunk) {
    const int64_t begin = chunk * kChunkRows;
    MatmulRows(xq, m_rows, k, weights, scales, out, n, begin, std::min(n, begin + kChunkRows));
  });
  return ffi::Error::Success();
}

}  // namespace

#pragma GCC pop_options

XLA_FFI_DEFINE_HANDLER_SYMBOL(CodegemmaInt8Matmul, Int8Matmul, codegemma::Int8MatmulSignature());
