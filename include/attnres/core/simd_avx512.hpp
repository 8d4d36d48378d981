#pragma once
// The multi-row kernels of core/simd.hpp for float, written with AVX-512 intrinsics and compiled
// for AVX-512 alone (a target attribute per function), so a library built for AVX2 can call them
// where the CPU has AVX-512 (core/cpu_isa.hpp chooses). 16 floats per register instead of 8,
// 32 registers instead of 16, and a masked load or store for the last D mod 16 numbers instead
// of a scalar tail. Same contracts as simd.hpp; tested against plain loops (tests/core/test_simd.cpp).
// Only call these when cpu_isa_supported(cpu_isa::avx512): elsewhere they fault (SIGILL).

#include <attnres/core/cpu_isa.hpp>
#include <attnres/core/index.hpp>

#if ATTNRES_HAVE_AVX512_KERNELS

#include <immintrin.h>

#include <utility>

#define ATTNRES_AVX512 __attribute__((target("avx512f")))

namespace attnres::simd::avx512 {

inline constexpr index_t width = 16;

namespace detail {
// the first r of 16 lanes (0 ≤ r < 16)
ATTNRES_AVX512 inline __mmask16 first_lanes(index_t r) { return static_cast<__mmask16>((1u << r) - 1u); }

// The sum of the 16 lanes, halving the width four times. (g++ 12's unmasked shuffles, extracts
// and _mm512_reduce_add_ps start from an "undefined" register that it then flags as
// uninitialised; the masked forms with every lane selected are the same instructions.)
ATTNRES_AVX512 inline float lane_sum(__m512 v) {
  constexpr __mmask16 all = 0xFFFF;
  v = _mm512_add_ps(v, _mm512_mask_shuffle_f32x4(v, all, v, v, _MM_SHUFFLE(1, 0, 3, 2)));  // + the other 256 bits
  v = _mm512_add_ps(v, _mm512_mask_shuffle_f32x4(v, all, v, v, _MM_SHUFFLE(2, 3, 0, 1)));  // + the next 128 bits
  __m128 x = _mm512_mask_extractf32x4_ps(_mm_setzero_ps(), 0xF, v, 0);  // the low 128 bits
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  x = _mm_add_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}

// K dot products of v with rows q_k, every load of v shared, C chains (accumulators) per
// product. Fewer chains than the FMA latency asks for measured best: a row of D = 256 is only 16
// registers, the loops mostly wait on memory, and each extra chain costs adds at the end
// (bench_depth_attention isa_ratio: C = 2 for K ≤ 2 and 1 for K = 3, 4 beat 8/4/2 and 4/2 by
// 3–10 %, docs/performance.md).
template <int K>
ATTNRES_AVX512 inline void dots_with(const float* v, const float* const* q, index_t n, float* out) {
  constexpr int C = K <= 2 ? 2 : 1;
  const float* qk[K];  // locals: loads through q could alias and be redone every step
  __m512 acc[C][K];
  for (int k = 0; k < K; ++k) {
    qk[k] = q[k];
    for (int c = 0; c < C; ++c) acc[c][k] = _mm512_setzero_ps();
  }
  index_t d = 0;
  for (; d + C * width <= n; d += C * width)
    for (int c = 0; c < C; ++c) {
      const __m512 vc = _mm512_loadu_ps(v + d + c * width);
      for (int k = 0; k < K; ++k) acc[c][k] = _mm512_fmadd_ps(vc, _mm512_loadu_ps(qk[k] + d + c * width), acc[c][k]);
    }
  for (; d + width <= n; d += width) {
    const __m512 vv = _mm512_loadu_ps(v + d);
    for (int k = 0; k < K; ++k) acc[0][k] = _mm512_fmadd_ps(vv, _mm512_loadu_ps(qk[k] + d), acc[0][k]);
  }
  if (d < n) {  // the last n − d < 16 numbers, masked (lanes past n are neither read nor added)
    const __mmask16 m = first_lanes(n - d);
    const __m512 vv = _mm512_maskz_loadu_ps(m, v + d);
    for (int k = 0; k < K; ++k) acc[0][k] = _mm512_fmadd_ps(vv, _mm512_maskz_loadu_ps(m, qk[k] + d), acc[0][k]);
  }
  for (int k = 0; k < K; ++k) {  // chains added pairwise: log2(C) dependent adds, not C − 1
    for (int step = 1; step < C; step *= 2)
      for (int c = 0; c + step < C; c += 2 * step) acc[c][k] = _mm512_add_ps(acc[c][k], acc[c + step][k]);
    out[k] = lane_sum(acc[0][k]);
  }
}

// One register of out (=|+=) Σ_{k<K} w_k·x_k at offset d, lanes m. Above 4 rows the sum is split
// over two accumulators (even and odd k), so no FMA chain is longer than 6.
template <int K, bool Accumulate>
ATTNRES_AVX512 __attribute__((always_inline)) inline void weighted_lanes(const __m512* wk, const float* const* xk,
                                                                        index_t d, __mmask16 m, float* out) {
  __m512 acc = Accumulate ? _mm512_maskz_loadu_ps(m, out + d) : _mm512_setzero_ps();
  if constexpr (K > 4) {
    __m512 odd = _mm512_mul_ps(wk[1], _mm512_maskz_loadu_ps(m, xk[1] + d));
    for (int k = 0; k < K; k += 2) acc = _mm512_fmadd_ps(wk[k], _mm512_maskz_loadu_ps(m, xk[k] + d), acc);
    for (int k = 3; k < K; k += 2) odd = _mm512_fmadd_ps(wk[k], _mm512_maskz_loadu_ps(m, xk[k] + d), odd);
    acc = _mm512_add_ps(acc, odd);
  } else {
    for (int k = 0; k < K; ++k) acc = _mm512_fmadd_ps(wk[k], _mm512_maskz_loadu_ps(m, xk[k] + d), acc);
  }
  _mm512_mask_storeu_ps(out + d, m, acc);
}

// out (=|+=) Σ_{k<K} w_k·x_k in one pass over out
template <int K, bool Accumulate>
ATTNRES_AVX512 inline void weighted_rows(const float* const* x, const float* w, index_t n, float* out) {
  __m512 wk[K];
  const float* xk[K];  // locals: the stores to out could otherwise alias x and force reloads
  for (int k = 0; k < K; ++k) wk[k] = _mm512_set1_ps(w[k]), xk[k] = x[k];
  index_t d = 0;
  for (; d + width <= n; d += width) weighted_lanes<K, Accumulate>(wk, xk, d, static_cast<__mmask16>(0xFFFF), out);
  if (d < n) weighted_lanes<K, Accumulate>(wk, xk, d, first_lanes(n - d), out);
}

// weighted_rows for r = 1 .. 12 rows (r > 12 takes 12): 12 broadcast weights, two accumulators
// and a load fit the 32 registers, so the backward's row update (2S + 1 rows) is one pass up to
// S = 5. The fold picks the instantiation K + 1 == r of the compile-time kernels.
inline constexpr index_t max_rows_per_pass = 12;
template <bool Accumulate, int... K>
ATTNRES_AVX512 inline void weighted_rows_n(index_t r, const float* const* x, const float* w, index_t n, float* out,
                                           std::integer_sequence<int, K...>) {
  const index_t rows = r < max_rows_per_pass ? r : max_rows_per_pass;
  (void)((rows == K + 1 && (weighted_rows<K + 1, Accumulate>(x, w, n, out), true)) || ...);
}
template <bool Accumulate>
ATTNRES_AVX512 inline void weighted_rows_n(index_t r, const float* const* x, const float* w, index_t n, float* out) {
  weighted_rows_n<Accumulate>(r, x, w, n, out, std::make_integer_sequence<int, max_rows_per_pass>{});
}
}  // namespace detail

// Σ_d a[d]·b[d]
ATTNRES_AVX512 inline float dot(const float* a, const float* b, index_t n) {
  float out;
  detail::dots_with<1>(a, &b, n, &out);
  return out;
}

// out[k] = Σ_d v[d]·q[k][d] for k < m: v read once per 4 products
ATTNRES_AVX512 inline void dots_with(const float* v, const float* const* q, index_t m, index_t n, float* out) {
  index_t k = 0;
  for (; k + 4 <= m; k += 4) detail::dots_with<4>(v, q + k, n, out + k);
  switch (m - k) {
    case 3: detail::dots_with<3>(v, q + k, n, out + k); break;
    case 2: detail::dots_with<2>(v, q + k, n, out + k); break;
    case 1: detail::dots_with<1>(v, q + k, n, out + k); break;
    default: break;
  }
}

// out = Σ_{k<m} w[k]·x[k] (m ≥ 1), out written once per 12 rows
ATTNRES_AVX512 inline void weighted_sum(const float* const* x, const float* w, index_t m, index_t n, float* out) {
  constexpr index_t R = detail::max_rows_per_pass;
  detail::weighted_rows_n<false>(m < R ? m : R, x, w, n, out);
  for (index_t k = R; k < m; k += R) detail::weighted_rows_n<true>(m - k, x + k, w + k, n, out);
}

// out += Σ_{k<m} w[k]·x[k] (m ≥ 0), out read and written once per 12 rows
ATTNRES_AVX512 inline void add_weighted_sum(const float* const* x, const float* w, index_t m, index_t n, float* out) {
  for (index_t k = 0; k < m; k += detail::max_rows_per_pass)
    detail::weighted_rows_n<true>(m - k, x + k, w + k, n, out);
}

}  // namespace attnres::simd::avx512

#undef ATTNRES_AVX512

#endif  // ATTNRES_HAVE_AVX512_KERNELS
