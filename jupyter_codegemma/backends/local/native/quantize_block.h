// One block of 64 activations -> 64 int8 values and their scale, as llama.cpp rounds
// activations (Q8): symmetric, scale = max|x| / 127, round to nearest (even). Both int8
// kernels (int8_matmul.cc, amx_matmul.cc) round through this function, so a prompt chunk and
// a decode step see exactly the same int8 activations.

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

}  // namespace codegemma

#endif  // CODEGEMMA_QUANTIZE_BLOCK_H_
