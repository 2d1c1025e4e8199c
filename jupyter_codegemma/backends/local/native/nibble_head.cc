// The tied output head of the int8 model (vocabulary × model width: 262 144 × 640 int8 for Gemma 3
// 270M, 168 MB), stored as two planes of 4-bit halves so that greedy decoding can read half of it.
//
// Every int8 weight w = 16·h + l with h = w >> 4 (arithmetic, -8 … 7) and l = w & 15 (0 … 15). The
// "high" plane holds u = h + 8 (0 … 15) and the "low" plane l, two per byte: in each block of 64
// weights, byte j holds the nibble of weight j (bits 0-3) and of weight j + 32 (bits 4-7).
// planes s8 [2, N, K/2]: planes[0] high, planes[1] low (quantize.py writes them, model.py reads them).
//
// With the activations rounded to int8 blocks of 64 as every int8 kernel rounds them
// (quantize_block.h), one block's sum over weight row n is
//
//   Σ w·q = 16·Σ u·q + Σ l·q - 128·Σ q
//
// exactly, in integers, lane by lane as avx2_matmul.cc forms it (each of 8 int32 lanes sums the
// same 8 products), and the blocks are summed in floats in the same order: `NibbleMatmul` gives the
// bits avx2_matmul.cc gives on the int8 matrix.
//
// `NibbleArgmax`, for greedy decoding and draft checks, reads the high plane alone (84 MB) and
// estimates each logit with every weight taken as 16·h + 7.5 (the mean of its interval). It keeps,
// per activation row and thread, the kCandidates rows with the largest estimates, computes their
// logits exactly and picks the largest (the first of equal largest), as argmax.cc would pick on the
// exact logits. This is not a bound: the exact argmax is missed where more than kCandidates rows of
// a thread's range have larger estimates, which weights made for it can do. On Gemma 3 270M's hidden
// states over 16 HumanEval programs (2 455 positions) the exact argmax ranked at most 52nd by the
// estimate (99th percentile: 10th), and the pick equalled it at every position; tests/test_nibble_head.py
// checks real positions on each run. (Keeping also every row within a few standard deviations of the
// estimate's error of the largest kept thousands of rows at some positions, for no gain there.) A row
// whose activations hold a NaN or an infinity gets its exact logits in full.

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <mutex>
#include <vector>

#include "avx2_sum.h"
#include "parallel_for.h"
#include "quantize_block.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

#pragma GCC push_options
#pragma GCC target("avx2,fma")

namespace {

constexpr int64_t kBlock = codegemma::kQuantBlock;
constexpr int64_t kPacked = kBlock / 2;  // bytes of one plane per block
constexpr int kRowGroup = 8;             // activation rows that share one pass over the weights
constexpr int64_t kChunkRows = 64;       // weight rows per unit of work (many activation rows)
constexpr int64_t kPrefetchBytes = 1024;
constexpr int64_t kMinRange = 4096;      // weight rows per thread at the least (few activation rows)
constexpr size_t kCandidates = 128;      // kept per activation row and thread by the estimate

struct Activations {
  int64_t rows, k, blocks;
  std::vector<int8_t> q;        // [M, K]
  std::vector<float> scale;     // [M, blocks]
  std::vector<int32_t> sum;     // [M, blocks, 8]: Σ q of each lane's 8 activations
  std::vector<uint8_t> finite;  // [M]
};

Activations Quantize(const float* x, int64_t rows, int64_t k) {
  const int64_t blocks = k / kBlock;
  Activations a{rows, k, blocks, std::vector<int8_t>(rows * k), std::vector<float>(rows * blocks),
                std::vector<int32_t>(rows * blocks * 8), std::vector<uint8_t>(rows, 1)};
  const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
  for (int64_t m = 0; m < rows; ++m) {
    for (int64_t i = 0; i < k; ++i) {
      if (!std::isfinite(x[m * k + i])) a.finite[m] = 0;
    }
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t at = m * k + b * kBlock;
      a.scale[m * blocks + b] = codegemma::QuantizeBlockAvx2(x + at, a.q.data() + at);
      const __m256i q0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.q.data() + at));
      const __m256i q1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.q.data() + at + 32));
      const __m256i s = _mm256_add_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(ones8, q0), ones16),
                                         _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, q1), ones16));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(a.sum.data() + (m * blocks + b) * 8), s);
    }
  }
  return a;
}

struct Head {
  const uint8_t* high;  // [N, K/2]
  const uint8_t* low;   // [N, K/2]
  const float* scale;   // [N]
  int64_t n, k;
};

inline __m256i Load(const void* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

// Σ nibbles·q over one block, per lane: the plane's 32 bytes hold weights 0-31 (low nibbles) and
// 32-63 (high nibbles), matched with q[0:32] and q[32:64].
// Each int16 pair sum is at most 2 · 15 · 127, so the two halves' pairs are added before widening: each
// int32 lane still sums the same 8 products, exactly.
inline __m256i NibbleDot(__m256i lo_half, __m256i hi_half, const int8_t* q, __m256i ones16) {
  return _mm256_madd_epi16(_mm256_add_epi16(_mm256_maddubs_epi16(lo_half, Load(q)),
                                            _mm256_maddubs_epi16(hi_half, Load(q + 32))), ones16);
}

// Exact logits of weight row r for activation rows [m0, m0 + T): y[t] (T ≤ kRowGroup).
inline void ExactRow(const Head& h, const Activations& a, int64_t r, int64_t m0, int T, float* y, int64_t y_stride) {
  const __m256i mask = _mm256_set1_epi8(0x0F), ones16 = _mm256_set1_epi16(1);
  const uint8_t* hp = h.high + r * (h.k / 2);
  const uint8_t* lp = h.low + r * (h.k / 2);
  __m256 acc[kRowGroup];
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < a.blocks; ++b) {
    const __m256i hv = Load(hp + b * kPacked), lv = Load(lp + b * kPacked);
    const __m256i h0 = _mm256_and_si256(hv, mask), h1 = _mm256_and_si256(_mm256_srli_epi16(hv, 4), mask);
    const __m256i l0 = _mm256_and_si256(lv, mask), l1 = _mm256_and_si256(_mm256_srli_epi16(lv, 4), mask);
    for (int t = 0; t < T; ++t) {
      const int64_t m = m0 + t;
      const int8_t* q = a.q.data() + m * a.k + b * kBlock;
      const __m256i sum = Load(a.sum.data() + (m * a.blocks + b) * 8);
      const __m256i dot = _mm256_sub_epi32(
          _mm256_add_epi32(_mm256_slli_epi32(NibbleDot(h0, h1, q, ones16), 4), NibbleDot(l0, l1, q, ones16)),
          _mm256_slli_epi32(sum, 7));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(a.scale[m * a.blocks + b]), acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) y[t * y_stride] = h.scale[r] * codegemma::HorizontalSum(acc[t]);
}

// The rows with the largest estimates a thread has seen: appended while above the threshold, and cut
// back to the kCandidates largest when the buffer fills.
struct Best {
  std::vector<std::pair<float, int64_t>> kept;
  float threshold = -std::numeric_limits<float>::infinity();
  void Offer(float value, int64_t index) {
    if (!(value > threshold)) return;  // a NaN estimate is never kept
    kept.emplace_back(value, index);
    if (kept.size() >= 4 * kCandidates) Trim();
  }
  void Trim() {
    if (kept.size() <= kCandidates) return;
    std::nth_element(kept.begin(), kept.begin() + (kCandidates - 1), kept.end(),
                     [](const auto& a, const auto& b) { return a.first > b.first; });
    kept.resize(kCandidates);
    threshold = kept[0].first;
    for (const auto& c : kept) threshold = std::min(threshold, c.first);
  }
};

// Estimated logits of weight row r (high plane only) for
// activation rows [m0, m0 + T): scale[r] · (16 · Σ_b sx_b · Σ u·q - bias[m]), where bias[m] =
// 120.5 · Σ_b sx_b · Σ q is the same for every weight row (each weight taken as 16·h + 7.5, the mean of
// its interval, so the estimate is unbiased).
template <int T>
inline void EstimateRow(const Head& h, const Activations& a, const float* bias, int64_t r, int64_t m0, float* y) {
  const __m256i mask = _mm256_set1_epi8(0x0F), ones16 = _mm256_set1_epi16(1);
  const uint8_t* hp = h.high + r * (h.k / 2);
  // One request per cache line ahead of the row (a row of Gemma 3 270M's plane is 5 lines).
  for (int64_t line = 0; line < h.k / 2; line += 64) _mm_prefetch(reinterpret_cast<const char*>(hp + line + kPrefetchBytes), _MM_HINT_T0);
  __m256 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < a.blocks; ++b) {
    const __m256i hv = Load(hp + b * kPacked);
    const __m256i h0 = _mm256_and_si256(hv, mask), h1 = _mm256_and_si256(_mm256_srli_epi16(hv, 4), mask);
    for (int t = 0; t < T; ++t) {
      const int64_t m = m0 + t;
      const __m256i dot = NibbleDot(h0, h1, a.q.data() + m * a.k + b * kBlock, ones16);
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(a.scale[m * a.blocks + b]), acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) y[t] = h.scale[r] * (16.0f * codegemma::HorizontalSum(acc[t]) - bias[m0 + t]);
}

// bias[m] of EstimateRow for every activation row.
std::vector<float> EstimateBias(const Activations& a) {
  std::vector<float> bias(a.rows);
  for (int64_t m = 0; m < a.rows; ++m) {
    double total = 0;
    for (int64_t b = 0; b < a.blocks; ++b) {
      int64_t sum = 0;
      for (int lane = 0; lane < 8; ++lane) sum += a.sum[(m * a.blocks + b) * 8 + lane];
      total += static_cast<double>(a.scale[m * a.blocks + b]) * static_cast<double>(sum);
    }
    bias[m] = static_cast<float>(120.5 * total);  // 16 · 8 - 7.5
  }
  return bias;
}

template <int T>
void EstimateRange(const Head& h, const Activations& a, const float* bias, int64_t m0, int64_t begin, int64_t end,
                   Best* best) {
  float y[T];
  for (int64_t r = begin; r < end; ++r) {
    EstimateRow<T>(h, a, bias, r, m0, y);
    for (int t = 0; t < T; ++t) best[t].Offer(y[t], r);
  }
}

bool Shapes(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::S8> planes, ffi::Buffer<ffi::F32> scale, Head* h) {
  const auto xd = x.dimensions(), pd = planes.dimensions();
  if (xd.size() != 2 || pd.size() != 3 || pd[0] != 2 || xd[1] != 2 * pd[2] || xd[1] % kBlock != 0 ||
      scale.element_count() != static_cast<size_t>(pd[1])) {
    return false;
  }
  h->n = pd[1];
  h->k = xd[1];
  h->high = reinterpret_cast<const uint8_t*>(planes.typed_data());
  h->low = h->high + h->n * (h->k / 2);
  h->scale = scale.typed_data();
  return true;
}

// y [M, N] = the exact logits (as avx2_matmul.cc computes them on the int8 matrix).
void ExactAll(ffi::ThreadPool& pool, const Head& h, const Activations& a, float* y) {
  auto rows = [&](int64_t begin, int64_t end) {
    for (int64_t m0 = 0; m0 < a.rows; m0 += kRowGroup) {
      const int T = static_cast<int>(std::min<int64_t>(kRowGroup, a.rows - m0));
      for (int64_t r = begin; r < end; ++r) ExactRow(h, a, r, m0, T, y + m0 * h.n + r, h.n);
    }
  };
  if (a.rows <= 2 * kRowGroup) {  // bound by memory: one stream of weight rows per core, asked for ahead
    codegemma::ParallelRanges(pool, h.n, kMinRange, [&](int64_t begin, int64_t end) {
      for (int64_t m0 = 0; m0 < a.rows; m0 += kRowGroup) {
        const int T = static_cast<int>(std::min<int64_t>(kRowGroup, a.rows - m0));
        for (int64_t r = begin; r < end; ++r) {
          for (int64_t line = 0; line < h.k / 2; line += 64) {
            _mm_prefetch(reinterpret_cast<const char*>(h.high + r * (h.k / 2) + line + kPrefetchBytes), _MM_HINT_T0);
            _mm_prefetch(reinterpret_cast<const char*>(h.low + r * (h.k / 2) + line + kPrefetchBytes), _MM_HINT_T0);
          }
          ExactRow(h, a, r, m0, T, y + m0 * h.n + r, h.n);
        }
      }
    });
  } else {
    codegemma::ParallelFor(pool, (h.n + kChunkRows - 1) / kChunkRows, [&](int64_t chunk) {
      rows(chunk * kChunkRows, std::min(h.n, (chunk + 1) * kChunkRows));
    });
  }
}

ffi::Error NibbleMatmul(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::S8> planes,
                        ffi::Buffer<ffi::F32> scale, ffi::ResultBuffer<ffi::F32> y) {
  Head h;
  if (!Shapes(x, planes, scale, &h)) {
    return ffi::Error::InvalidArgument("nibble_matmul: expected x [M, K], planes [2, N, K/2], scale [N], K % 64 == 0");
  }
  const Activations a = Quantize(x.typed_data(), x.dimensions()[0], h.k);
  ExactAll(pool, h, a, y->typed_data());
  return ffi::Error::Success();
}

ffi::Error NibbleArgmax(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::S8> planes,
                        ffi::Buffer<ffi::F32> scale, ffi::ResultBuffer<ffi::S32> out) {
  Head h;
  if (!Shapes(x, planes, scale, &h)) {
    return ffi::Error::InvalidArgument("nibble_argmax: expected x [M, K], planes [2, N, K/2], scale [N], K % 64 == 0");
  }
  const int64_t rows = x.dimensions()[0];
  const Activations a = Quantize(x.typed_data(), rows, h.k);
  const std::vector<float> bias = EstimateBias(a);
  std::vector<std::vector<int64_t>> candidates(rows);
  std::mutex merge;
  for (int64_t m0 = 0; m0 < rows; m0 += kRowGroup) {
    const int T = static_cast<int>(std::min<int64_t>(kRowGroup, rows - m0));
    codegemma::ParallelRanges(pool, h.n, kMinRange, [&](int64_t begin, int64_t end) {
      std::vector<Best> best(T);
      switch (T) {  // the activation rows' accumulators stay in registers
        case 1: EstimateRange<1>(h, a, bias.data(), m0, begin, end, best.data()); break;
        case 2: EstimateRange<2>(h, a, bias.data(), m0, begin, end, best.data()); break;
        case 3: EstimateRange<3>(h, a, bias.data(), m0, begin, end, best.data()); break;
        case 4: EstimateRange<4>(h, a, bias.data(), m0, begin, end, best.data()); break;
        case 5: EstimateRange<5>(h, a, bias.data(), m0, begin, end, best.data()); break;
        case 6: EstimateRange<6>(h, a, bias.data(), m0, begin, end, best.data()); break;
        case 7: EstimateRange<7>(h, a, bias.data(), m0, begin, end, best.data()); break;
        default: EstimateRange<8>(h, a, bias.data(), m0, begin, end, best.data()); break;
      }
      std::lock_guard<std::mutex> lock(merge);
      for (int t = 0; t < T; ++t) {
        best[t].Trim();
        for (const auto& c : best[t].kept) candidates[m0 + t].push_back(c.second);
      }
    });
  }
  int32_t* ids = out->typed_data();
  for (int64_t m = 0; m < rows; ++m) {
    if (!a.finite[m] || candidates[m].empty()) {  // the exact logits in full, picked as argmax.cc picks
      std::vector<float> y(h.n);
      Activations one = Quantize(x.typed_data() + m * h.k, 1, h.k);
      ExactAll(pool, h, one, y.data());
      int64_t pick = 0;
      for (int64_t r = 0; r < h.n; ++r) {
        if (std::isnan(y[r])) { pick = r; break; }
        if (y[r] > y[pick]) pick = r;
      }
      ids[m] = static_cast<int32_t>(pick);
      continue;
    }
    std::vector<int64_t>& rows_to_check = candidates[m];
    std::sort(rows_to_check.begin(), rows_to_check.end());
    // The candidates' rows lie anywhere in the planes: each is asked for a few candidates ahead.
    constexpr size_t kAhead = 8;
    auto request = [&](size_t i) {
      if (i >= rows_to_check.size()) return;
      for (int64_t line = 0; line < h.k / 2; line += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(h.high + rows_to_check[i] * (h.k / 2) + line), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(h.low + rows_to_check[i] * (h.k / 2) + line), _MM_HINT_T0);
      }
    };
    for (size_t i = 0; i < kAhead; ++i) request(i);
    int64_t pick = -1;
    float value = 0.0f;
    for (size_t i = 0; i < rows_to_check.size(); ++i) {
      request(i + kAhead);
      float y;
      ExactRow(h, a, rows_to_check[i], m, 1, &y, 1);
      if (pick < 0 || y > value) pick = rows_to_check[i], value = y;
    }
    ids[m] = static_cast<int32_t>(pick);
  }
  return ffi::Error::Success();
}

auto Signature() {
  return ffi::Ffi::Bind()
      .Ctx<ffi::ThreadPool>()
      .Arg<ffi::Buffer<ffi::F32>>()
      .Arg<ffi::Buffer<ffi::S8>>()
      .Arg<ffi::Buffer<ffi::F32>>();
}

}  // namespace

#pragma GCC pop_options

XLA_FFI_DEFINE_HANDLER_SYMBOL(CodegemmaNibbleMatmul, NibbleMatmul, Signature().Ret<ffi::Buffer<ffi::F32>>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(CodegemmaNibbleArgmax, NibbleArgmax, Signature().Ret<ffi::Buffer<ffi::S32>>());
