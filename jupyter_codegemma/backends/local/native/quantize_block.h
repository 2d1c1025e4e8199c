// One block of 64 activations -> 64 int8 values and their scale, as llama.cpp rounds
// activations (Q8): symmetric, scale = max|x| / 127, round to nearest (even). Every int8
// kernel (int8_matmul.cc, amx_matmul.cc, avx2_matmul.cc) rounds through these functions, so a
// prompt chunk and a decode step see exactly the same int8 activations. The AVX2 version
// computes the same values bit for bit (max, one division, a multiply and round-to-nearest-
// even are exact or correctly rounded in both), so the kernel a CPU dispatches to changes only
// the float summation order of the products.

#ifndef CODEGEMMA_QUANTIZE_BLOCK_H_
#define CODEGEMMA_QUANTIZE_BLOCK_H_

#include <immintrin.h>

#include <cstdint>

namespace codegemma {

constexpr int64_t kQuantBlock = 64;

// Writes q[0..63]; returns the scale (0 for an all-zero block, whose q are all 0).
__attribute__((target("avx512f,avx512bw"))) inline float QuantizeBlock(const float* x, int8_t* q) {
  __m512 v[4];
  __m512 amax = _mm512_setzero_ps();
  for (int i = 0; i < 4; ++i) {
    v[i] = _mm512_loadu_ps(x + 16 * i);
    amax = _mm512_max_ps(amax, _mm512_abs_ps(v[i]));
  }
  const float scale = _mm512_reduce_max_ps(amax) / 127.0f;
  const __m512 inv = _mm512_set1_ps(scale > 0.0f ? 1.0f / scale : 0.0f);
  for (int i = 0; i < 4; ++i) {
    // cvtps rounds to nearest even (the default mode), as std::nearbyint does; |x·inv| <= 127.
    const __m512i r = _mm512_cvtps_epi32(_mm512_mul_ps(v[i], inv));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 16 * i), _mm512_cvtsepi32_epi8(r));
  }
  return scale;
}

__attribute__((target("avx2,fma"))) inline float QuantizeBlockAvx2(const float* x, int8_t* q) {
  const __m256 sign_bit = _mm256_set1_ps(-0.0f);
  __m256 v[8];
  __m256 amax = _mm256_setzero_ps();
  for (int i = 0; i < 8; ++i) {
    v[i] = _mm256_loadu_ps(x + 8 * i);
    amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign_bit, v[i]));
  }
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  const float scale = _mm_cvtss_f32(m) / 127.0f;
  const __m256 inv = _mm256_set1_ps(scale > 0.0f ? 1.0f / scale : 0.0f);
  for (int i = 0; i < 8; i += 4) {
    const __m256i a = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], inv));
    const __m256i b = _mm256_cvtps_epi32(_mm256_mul_ps(v[i + 1], inv));
    const __m256i c = _mm256_cvtps_epi32(_mm256_mul_ps(v[i + 2], inv));
    const __m256i d = _mm256_cvtps_epi32(_mm256_mul_ps(v[i + 3], inv));
    // The packs work within 128-bit lanes: bytes come out as 32-bit groups in the order
    // a0 b0 c0 d0 a1 b1 c1 d1 (0: low lane, 1: high lane); the permute puts them back.
    const __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
    const __m256i ordered = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + 8 * i), ordered);
  }
  return scale;
}

}  // namespace codegemma

#endif  // CODEGEMMA_QUANTIZE_BLOCK_H_
