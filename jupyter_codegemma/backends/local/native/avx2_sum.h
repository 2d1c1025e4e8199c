// The sum of an AVX register's eight floats, always added in the same order: the int8 products'
// rows and the decode attention's dot products are summed by this one function, so the order (and
// with it the bits of every result) is defined in one place.

#ifndef CODEGEMMA_AVX2_SUM_H_
#define CODEGEMMA_AVX2_SUM_H_

#include <immintrin.h>

namespace codegemma {

// ((v0+v4) + (v2+v6)) + ((v1+v5) + (v3+v7))
__attribute__((target("avx2,fma"))) inline float HorizontalSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

}  // namespace codegemma

#endif  // CODEGEMMA_AVX2_SUM_H_
