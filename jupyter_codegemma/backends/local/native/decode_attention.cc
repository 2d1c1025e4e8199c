// The attention of a decode step or a draft check, read straight from the KV cache: for each KV head,
// its query rows (G query heads at each of T consecutive positions) over the keys of the cache view
// [start, start + view) that each row's position may see.
//
// XLA's CPU backend first copies the view out of the cache (a dynamic slice: the keys and the
// values, 0.5 MB each for a sliding-window layer of Gemma 3 270M), then multiplies the copies; in a
// decode step that was ~0.24 ms of each layer's ~0.7 ms outside the weight products. Here the keys
// and values are read once, where they lie, as float32 or as float16 (a float16 cache is half the
// memory, as llama.cpp keeps it; F16C widens each key and value once, for all rows).
//
// The view is cut into chunks of kChunk positions aligned to absolute cache positions; each chunk
// gives, per query row, its largest logit, the sum of exp(logit - largest) and the values weighted
// by those exponentials. The chunks run in parallel; the rows' results are then merged chunk by chunk
// in position order. Keys a row may not see never enter its sums, so a row's result does not depend
// on the view it was computed in (its start and length), on the other rows, nor on the threads: a
// draft check's row for a position has the bits a decode step at that position would have.
//
//   q       f32 [K, T·G, H]           the queries (already scaled), per KV head; rows position-major
//   k, v    f32 or f16 [L, B, S, K, H] or [B, S, K, H], B = 1: the cache (a stack of L layers, or one layer)
//   layer   s32 []                    which layer of the stack
//   start   s32 []                    the view's first cache position
//   position s32 []                   the first query position (row r is at position + r / G)
//   attrs   view (keys in the view), positions (T), window (0: a global layer), softcap (0: none)
//   ->      f32 [K, T·G, H]

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "avx2_sum.h"
#include "parallel_for.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

// Only this file's own functions use AVX2, FMA and F16C (the library also loads on CPUs without
// them; Python registers this kernel only where the CPU has them).
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

namespace {

constexpr int64_t kChunk = 64;     // cache positions per chunk
constexpr int64_t kMaxRows = 32;   // query rows per KV head (T·G) this kernel takes
constexpr int64_t kMaxDim = 512;   // head_dim this kernel takes

// One key's or value's H elements as float32: where they lie, or widened from float16 into `scratch`.
inline const float* AsFloat(const float* row, int64_t, float*) { return row; }
inline const float* AsFloat(const uint16_t* row, int64_t n, float* scratch) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(scratch + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + i))));
  }
  for (; i < n; ++i) scratch[i] = _cvtsh_ss(row[i]);
  return scratch;
}

float Dot(const float* a, const float* b, int64_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
  }
  float total = codegemma::HorizontalSum(_mm256_add_ps(s0, s1));
  for (; i < n; ++i) total += a[i] * b[i];
  return total;
}

// out[0, n) += w · v[0, n)
void Axpy(float w, const float* v, float* out, int64_t n) {
  const __m256 wv = _mm256_set1_ps(w);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(out + i, _mm256_fmadd_ps(wv, _mm256_loadu_ps(v + i), _mm256_loadu_ps(out + i)));
  }
  for (; i < n; ++i) out[i] += w * v[i];
}

struct Partial {
  float max;  // -inf: the chunk holds no key the row sees
  float sum;
};

template <typename Element>
ffi::Error Attend(ffi::ThreadPool& pool, const float* queries, int64_t heads, int64_t rows, int64_t dim,
                  const Element* k_data, const Element* v_data, ffi::Span<const int64_t> kd, int64_t index,
                  int64_t start, int64_t position, int64_t view, int64_t positions, int64_t window, float softcap,
                  float* result) {
  const int64_t cache_len = kd[kd.size() - 3];
  const int64_t group = rows / positions;  // query heads per KV head
  // The keys each row sees, within the view: [first_key[r], last_key[r]] (row r is at position + r / G).
  int64_t first_key[kMaxRows], last_key[kMaxRows];
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t row_position = position + r / group;
    first_key[r] = std::max(start, window > 0 ? row_position - window + 1 : int64_t{0});
    last_key[r] = std::min(row_position, start + view - 1);
  }
  const int64_t first = first_key[0], last = last_key[rows - 1];
  const size_t out_size = static_cast<size_t>(heads * rows * dim);
  if (first > last) {  // nothing to see (never for a real step): zeros, as a softmax over no keys gives none
    std::fill(result, result + out_size, 0.0f);
    return ffi::Error::Success();
  }
  const int64_t layer_size = cache_len * heads * dim;  // elements per layer (B = 1)
  const Element* keys = k_data + index * layer_size;
  const Element* values = v_data + index * layer_size;
  const int64_t chunk_first = first / kChunk, chunks = last / kChunk - chunk_first + 1;
  const int64_t units = heads * chunks;
  // Kept per calling thread from step to step: a global layer's 256 KB would otherwise be mapped,
  // faulted in and unmapped again at every step (glibc maps allocations above 128 KB).
  // The worker threads get the calling thread's buffers as pointers (named inside the lambda, a
  // thread_local would be the worker's own).
  static thread_local std::vector<Partial> partial_buffer;
  static thread_local std::vector<float> weighted_buffer;
  partial_buffer.resize(units * rows);
  weighted_buffer.assign(units * rows * dim, 0.0f);
  Partial* const partial = partial_buffer.data();
  float* const weighted = weighted_buffer.data();

  codegemma::ParallelFor(pool, units, [&](int64_t unit) {
    const int64_t head = unit / chunks, c = chunk_first + unit % chunks;
    const int64_t begin = std::max(first, c * kChunk), end = std::min(last + 1, (c + 1) * kChunk);
    const float* qh = queries + head * rows * dim;
    float logits[kMaxRows][kChunk];
    float scratch[kMaxDim];
    Partial* p = partial + unit * rows;
    for (int64_t r = 0; r < rows; ++r) p[r] = {-std::numeric_limits<float>::infinity(), 0.0f};
    for (int64_t j = begin; j < end; ++j) {
      const float* key = AsFloat(keys + (j * heads + head) * dim, dim, scratch);
      for (int64_t r = 0; r < rows; ++r) {
        if (j < first_key[r] || j > last_key[r]) continue;
        float logit = Dot(qh + r * dim, key, dim);
        if (softcap > 0.0f) logit = std::tanh(logit / softcap) * softcap;
        logits[r][j - begin] = logit;
        p[r].max = std::max(p[r].max, logit);
      }
    }
    float* w = weighted + unit * rows * dim;
    for (int64_t j = begin; j < end; ++j) {
      const float* value = AsFloat(values + (j * heads + head) * dim, dim, scratch);
      for (int64_t r = 0; r < rows; ++r) {
        if (j < first_key[r] || j > last_key[r]) continue;
        const float e = std::exp(logits[r][j - begin] - p[r].max);
        p[r].sum += e;
        Axpy(e, value, w + r * dim, dim);
      }
    }
  });

  // Merge each row's chunks in position order: rescale every chunk to the row's largest logit
  // (a chunk holding no key of the row adds nothing).
  for (int64_t head = 0; head < heads; ++head) {
    for (int64_t r = 0; r < rows; ++r) {
      float top = -std::numeric_limits<float>::infinity();
      for (int64_t c = 0; c < chunks; ++c) top = std::max(top, partial[(head * chunks + c) * rows + r].max);
      float* o = result + (head * rows + r) * dim;
      std::fill(o, o + dim, 0.0f);
      if (top == -std::numeric_limits<float>::infinity()) continue;  // a row that sees no key
      float total = 0.0f;
      for (int64_t c = 0; c < chunks; ++c) {
        const int64_t unit = head * chunks + c;
        const Partial& p = partial[unit * rows + r];
        if (p.max == -std::numeric_limits<float>::infinity()) continue;
        const float factor = std::exp(p.max - top);
        total += factor * p.sum;
        Axpy(factor, weighted + (unit * rows + r) * dim, o, dim);
      }
      const float inverse = 1.0f / total;
      for (int64_t i = 0; i < dim; ++i) o[i] *= inverse;
    }
  }
  return ffi::Error::Success();
}

// The checks both cache types share; then Attend.
template <ffi::DataType T>
ffi::Error DecodeAttention(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> q, ffi::Buffer<T> k, ffi::Buffer<T> v,
                           ffi::Buffer<ffi::S32> layer, ffi::Buffer<ffi::S32> start_buf,
                           ffi::Buffer<ffi::S32> position_buf, int64_t view, int64_t positions, int64_t window,
                           float softcap, ffi::ResultBuffer<ffi::F32> out) {
  const auto qd = q.dimensions();
  const auto kd = k.dimensions();
  const bool stacked = kd.size() == 5;
  const auto vd = v.dimensions();
  if (qd.size() != 3 || (kd.size() != 4 && kd.size() != 5) || vd.size() != kd.size() ||
      !std::equal(kd.begin(), kd.end(), vd.begin()) ||
      layer.element_count() != 1 || start_buf.element_count() != 1 || position_buf.element_count() != 1) {
    return ffi::Error::InvalidArgument(
        "decode_attention: expected q [K, T*G, H], k and v [L, B, S, K, H] or [B, S, K, H], scalar layer, start, position");
  }
  const int64_t heads = qd[0], rows = qd[1], dim = qd[2];
  const int64_t stack = stacked ? kd[0] : 1;
  const int64_t batch = kd[kd.size() - 4], cache_len = kd[kd.size() - 3];
  const int64_t index = stacked ? layer.typed_data()[0] : 0;
  const int64_t start = start_buf.typed_data()[0], position = position_buf.typed_data()[0];
  if (batch != 1 || kd[kd.size() - 2] != heads || kd[kd.size() - 1] != dim || rows < 1 || rows > kMaxRows ||
      dim > kMaxDim ||
      positions < 1 || rows % positions != 0 || index < 0 || index >= stack || start < 0 || view < 1 ||
      start + view > cache_len || position < 0) {
    return ffi::Error::InvalidArgument("decode_attention: shapes, layer or view do not fit the cache");
  }
  return Attend(pool, q.typed_data(), heads, rows, dim, k.typed_data(), v.typed_data(), kd, index, start, position,
                view, positions, window, softcap, out->typed_data());
}

}  // namespace

#pragma GCC pop_options

#define CODEGEMMA_DECODE_ATTENTION(name, type)                      \
  XLA_FFI_DEFINE_HANDLER_SYMBOL(name, DecodeAttention<type>,       \
                                ffi::Ffi::Bind()                   \
                                    .Ctx<ffi::ThreadPool>()        \
                                    .Arg<ffi::Buffer<ffi::F32>>()  \
                                    .Arg<ffi::Buffer<type>>()      \
                                    .Arg<ffi::Buffer<type>>()      \
                                    .Arg<ffi::Buffer<ffi::S32>>()  \
                                    .Arg<ffi::Buffer<ffi::S32>>()  \
                                    .Arg<ffi::Buffer<ffi::S32>>()  \
                                    .Attr<int64_t>("view")         \
                                    .Attr<int64_t>("positions")    \
                                    .Attr<int64_t>("window")       \
                                    .Attr<float>("softcap")        \
                                    .Ret<ffi::Buffer<ffi::F32>>());

CODEGEMMA_DECODE_ATTENTION(CodegemmaDecodeAttention, ffi::F32)
CODEGEMMA_DECODE_ATTENTION(CodegemmaDecodeAttentionF16, ffi::F16)
