#pragma once
// Dot products of a float row with rows of bf16 weights (core/bf16.hpp): the matrix-vector
// kernel of decoding with bf16 weights (ops/cpu/linear.hpp). Each 16-bit weight is widened to
// its float (zero-extend to 32 bits, shift left by 16) in registers and multiplied in float, so
// the result is the float product with the weights' bf16 values; only the bytes read from memory
// halve.
//
//   dots_with(v, q, m, n, out)   out[k] = Σ_{d<n} v[d]·float(q_k[d]) for the m rows q_0 … q_{m−1}
//
// Three implementations, chosen like the depth-attention kernels (core/cpu_isa.hpp): AVX-512F
// where cpu_isa::avx512 is in force, AVX2 + FMA where the build targets them, and a plain loop
// otherwise. Four rows share every load of v. Tested against a loop in double
// (tests/core/test_bf16.cpp).

#include <attnres/core/bf16.hpp>
#include <attnres/core/cpu_isa.hpp>
#include <attnres/core/index.hpp>
#include <attnres/core/simd_avx512.hpp>  // lane_sum

#if (defined(__AVX2__) && defined(__FMA__)) || ATTNRES_HAVE_AVX512_KERNELS
#include <immintrin.h>
#endif

namespace attnres::simd {

namespace bf16_detail {
// The plain form: also the tails of the vector forms (d from `from` to n).
template <int K>
inline void dots_tail(const float* v, const bf16* const* q, index_t from, index_t n, float* out) {
  for (int k = 0; k < K; ++k) {
    float s = 0;
    for (index_t d = from; d < n; ++d) s += v[d] * static_cast<float>(q[k][d]);
    out[k] += s;
  }
}

#if defined(__AVX2__) && defined(__FMA__)
inline __m256 widen8(const bf16* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
inline float lane_sum8(__m256 a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
// One accumulator per row: K ≤ 4 chains of FMAs whose loads (the weights, from memory) are the
// limit, not the FMAs' latency.
template <int K>
inline void dots_avx2(const float* v, const bf16* const* q, index_t n, float* out) {
  const bf16* qk[K];  // locals: loads through q could alias and be redone every step
  __m256 acc[K];
  for (int k = 0; k < K; ++k) qk[k] = q[k], acc[k] = _mm256_setzero_ps();
  index_t d = 0;
  for (; d + 8 <= n; d += 8) {
    const __m256 vv = _mm256_loadu_ps(v + d);
    for (int k = 0; k < K; ++k) acc[k] = _mm256_fmadd_ps(vv, widen8(qk[k] + d), acc[k]);
  }
  for (int k = 0; k < K; ++k) out[k] = lane_sum8(acc[k]);
  dots_tail<K>(v, qk, d, n, out);
}
#endif

template <int K>
inline void dots_plain(const float* v, const bf16* const* q, index_t n, float* out) {
#if defined(__AVX2__) && defined(__FMA__)
  dots_avx2<K>(v, q, n, out);
#else
  for (int k = 0; k < K; ++k) out[k] = 0;
  dots_tail<K>(v, q, 0, n, out);
#endif
}

#if ATTNRES_HAVE_AVX512_KERNELS
#define ATTNRES_AVX512 __attribute__((target("avx512f")))
ATTNRES_AVX512 inline __m512 widen16(const bf16* p) {
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  // the masked forms with every lane selected: the unmasked ones start from an "undefined"
  // register that g++ 12 then reports as uninitialised (as in core/simd_avx512.hpp)
  constexpr __mmask16 all = 0xFFFF;
  return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(all, _mm512_maskz_cvtepu16_epi32(all, h), 16));
}
template <int K>
ATTNRES_AVX512 inline void dots_avx512(const float* v, const bf16* const* q, index_t n, float* out) {
  const bf16* qk[K];
  __m512 acc[K];
  for (int k = 0; k < K; ++k) qk[k] = q[k], acc[k] = _mm512_setzero_ps();
  index_t d = 0;
  for (; d + 16 <= n; d += 16) {
    const __m512 vv = _mm512_loadu_ps(v + d);
    for (int k = 0; k < K; ++k) acc[k] = _mm512_fmadd_ps(vv, widen16(qk[k] + d), acc[k]);
  }
  for (int k = 0; k < K; ++k) out[k] = avx512::detail::lane_sum(acc[k]);
  dots_tail<K>(v, qk, d, n, out);
}
#undef ATTNRES_AVX512
#endif

template <int K>
inline void dots(bool wide, const float* v, const bf16* const* q, index_t n, float* out) {
#if ATTNRES_HAVE_AVX512_KERNELS
  if (wide) return dots_avx512<K>(v, q, n, out);
#else
  (void)wide;
#endif
  dots_plain<K>(v, q, n, out);
}
}  // namespace bf16_detail

inline void dots_with(const float* v, const bf16* const* q, index_t m, index_t n, float* out) {
  const bool wide = active_cpu_isa() == cpu_isa::avx512;
  index_t k = 0;
  for (; k + 4 <= m; k += 4) bf16_detail::dots<4>(wide, v, q + k, n, out + k);
  switch (m - k) {
    case 3: bf16_detail::dots<3>(wide, v, q + k, n, out + k); break;
    case 2: bf16_detail::dots<2>(wide, v, q + k, n, out + k); break;
    case 1: bf16_detail::dots<1>(wide, v, q + k, n, out + k); break;
    default: break;
  }
}

}  // namespace attnres::simd
