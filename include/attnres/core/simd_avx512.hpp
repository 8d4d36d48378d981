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
// ahead (or nullptr): a row of n floats to request from memory on the way, a line per 16 floats
// of v (see the public dots_with).
template <int K>
ATTNRES_AVX512 inline void dots_with(const float* v, const float* const* q, index_t n, float* out,
                                     const float* ahead = nullptr) {
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
      if (ahead) __builtin_prefetch(ahead + d + c * width);
      const __m512 vc = _mm512_loadu_ps(v + d + c * width);
      for (int k = 0; k < K; ++k) acc[c][k] = _mm512_fmadd_ps(vc, _mm512_loadu_ps(qk[k] + d + c * width), acc[c][k]);
    }
  for (; d + width <= n; d += width) {
    if (ahead) __builtin_prefetch(ahead + d);
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

// K dot products (w ⊙ g)·x_k, the product w ⊙ g formed on the way: one token's logits when
// decoding. Its rows are in cache, so a product waits on its FMA chain rather than on memory:
// two chains per row (K ≤ 9: 18 accumulators, the product and a load fit the 32 registers).
template <int K>
ATTNRES_AVX512 inline void folded_dots(const float* w, const float* g, const float* const* x, index_t n, float* out) {
  const float* xk[K];  // locals: see dots_with
  __m512 acc[2][K];
  for (int k = 0; k < K; ++k) {
    xk[k] = x[k];
    acc[0][k] = acc[1][k] = _mm512_setzero_ps();
  }
  index_t d = 0;
  for (; d + 2 * width <= n; d += 2 * width)
    for (int c = 0; c < 2; ++c) {
      const index_t e = d + c * width;
      const __m512 q = _mm512_mul_ps(_mm512_loadu_ps(w + e), _mm512_loadu_ps(g + e));
      for (int k = 0; k < K; ++k) acc[c][k] = _mm512_fmadd_ps(q, _mm512_loadu_ps(xk[k] + e), acc[c][k]);
    }
  for (; d < n; d += width) {  // at most two registers left, the last one masked if short
    const __mmask16 m = n - d >= width ? static_cast<__mmask16>(0xFFFF) : first_lanes(n - d);
    const __m512 q = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, w + d), _mm512_maskz_loadu_ps(m, g + d));
    for (int k = 0; k < K; ++k) acc[0][k] = _mm512_fmadd_ps(q, _mm512_maskz_loadu_ps(m, xk[k] + d), acc[0][k]);
  }
  for (int k = 0; k < K; ++k) out[k] = lane_sum(_mm512_add_ps(acc[0][k], acc[1][k]));
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

// A load of 16 lanes, or of the lanes in m only when Masked (the row's last D mod 16 numbers)
template <bool Masked>
ATTNRES_AVX512 __attribute__((always_inline)) inline __m512 load(const float* p, __mmask16 m) {
  if constexpr (Masked) return _mm512_maskz_loadu_ps(m, p);
  else return _mm512_loadu_ps(p);
}
template <bool Masked>
ATTNRES_AVX512 __attribute__((always_inline)) inline void store(float* p, __mmask16 m, __m512 v) {
  if constexpr (Masked) _mm512_mask_storeu_ps(p, m, v);
  else _mm512_storeu_ps(p, v);
}

// The K dot products of dots_with for two rows v0 and v1 at once: every load of a q_k serves
// both (the backward's two sources of one token), one chain per product and row (2K chains).
template <int K, bool Masked>
ATTNRES_AVX512 __attribute__((always_inline)) inline void dots_with_pair_step(const float* v0, const float* v1,
                                                                             const float* const* qk, index_t d,
                                                                             __mmask16 m, __m512* acc0, __m512* acc1) {
  const __m512 x0 = load<Masked>(v0 + d, m), x1 = load<Masked>(v1 + d, m);
  for (int k = 0; k < K; ++k) {
    const __m512 y = load<Masked>(qk[k] + d, m);
    acc0[k] = _mm512_fmadd_ps(x0, y, acc0[k]);
    acc1[k] = _mm512_fmadd_ps(x1, y, acc1[k]);
  }
}
template <int K>
ATTNRES_AVX512 inline void dots_with_pair(const float* v0, const float* v1, const float* const* q, index_t n,
                                          float* out0, float* out1) {
  const float* qk[K];  // locals: see dots_with
  __m512 acc0[K], acc1[K];
  for (int k = 0; k < K; ++k) qk[k] = q[k], acc0[k] = acc1[k] = _mm512_setzero_ps();
  index_t d = 0;
  for (; d + width <= n; d += width) dots_with_pair_step<K, false>(v0, v1, qk, d, 0, acc0, acc1);
  if (d < n) dots_with_pair_step<K, true>(v0, v1, qk, d, first_lanes(n - d), acc0, acc1);
  for (int k = 0; k < K; ++k) out0[k] = lane_sum(acc0[k]), out1[k] = lane_sum(acc1[k]);
}

// The backward's row update (core/simd.hpp's row_update contract) for two sources of one token,
// over points [0, P) of the pointers given: each dh_p and q_p load serves both dv rows.
//   dv_r (=|+=) kv_r·v_r + Σ_p (α_rp·dh_p + k_rp·q_p)      r = 0, 1
// With V the v terms are added (and dv is written, not added to, when Overwrite); without V the
// pass adds only the points' terms to dv (a later group of points).
template <int P, bool V, bool Overwrite, bool Masked>
ATTNRES_AVX512 __attribute__((always_inline)) inline void row_update_pair_step(
    const float* const* dhp, const float* const* qp, const __m512* a0, const __m512* c0, __m512 w0, const float* v0,
    float* dv0, const __m512* a1, const __m512* c1, __m512 w1, const float* v1, float* dv1, index_t d, __mmask16 m,
    const float* const* ahead, int n_ahead) {
  for (int i = 0; i < n_ahead; ++i) __builtin_prefetch(ahead[i] + d);  // a line of each, 16 floats a step
  // two chains per row (the dh terms and the q terms), joined at the store
  __m512 s0, s1;
  if constexpr (V && Overwrite) {
    s0 = _mm512_mul_ps(w0, load<Masked>(v0 + d, m));
    s1 = _mm512_mul_ps(w1, load<Masked>(v1 + d, m));
  } else if constexpr (V) {
    s0 = _mm512_fmadd_ps(w0, load<Masked>(v0 + d, m), load<Masked>(dv0 + d, m));
    s1 = _mm512_fmadd_ps(w1, load<Masked>(v1 + d, m), load<Masked>(dv1 + d, m));
  } else {
    s0 = load<Masked>(dv0 + d, m);
    s1 = load<Masked>(dv1 + d, m);
  }
  __m512 t0 = _mm512_setzero_ps(), t1 = _mm512_setzero_ps();
  for (int p = 0; p < P; ++p) {
    const __m512 g = load<Masked>(dhp[p] + d, m), u = load<Masked>(qp[p] + d, m);
    s0 = _mm512_fmadd_ps(a0[p], g, s0);
    s1 = _mm512_fmadd_ps(a1[p], g, s1);
    t0 = _mm512_fmadd_ps(c0[p], u, t0);
    t1 = _mm512_fmadd_ps(c1[p], u, t1);
  }
  store<Masked>(dv0 + d, m, _mm512_add_ps(s0, t0));
  store<Masked>(dv1 + d, m, _mm512_add_ps(s1, t1));
}
template <int P, bool V, bool Overwrite>
ATTNRES_AVX512 inline void row_update_pair(const float* const* dh, const float* const* q, const float* alpha0,
                                           const float* k0, float kv0, const float* v0, float* dv0,
                                           const float* alpha1, const float* k1, float kv1, const float* v1,
                                           float* dv1, index_t n, const float* const* ahead, int n_ahead) {
  constexpr int max_ahead = 4;
  const float* next[max_ahead];  // locals, as the rows above
  n_ahead = n_ahead < max_ahead ? n_ahead : max_ahead;
  for (int i = 0; i < n_ahead; ++i) next[i] = ahead[i];
  const float *dhp[P], *qp[P];  // locals: the stores could otherwise alias them and force reloads
  __m512 a0[P], c0[P], a1[P], c1[P];
  for (int p = 0; p < P; ++p) {
    dhp[p] = dh[p], qp[p] = q[p];
    a0[p] = _mm512_set1_ps(alpha0[p]), c0[p] = _mm512_set1_ps(k0[p]);
    a1[p] = _mm512_set1_ps(alpha1[p]), c1[p] = _mm512_set1_ps(k1[p]);
  }
  const __m512 w0 = _mm512_set1_ps(kv0), w1 = _mm512_set1_ps(kv1);
  index_t d = 0;
  for (; d + width <= n; d += width)
    row_update_pair_step<P, V, Overwrite, false>(dhp, qp, a0, c0, w0, v0, dv0, a1, c1, w1, v1, dv1, d, 0, next, n_ahead);
  if (d < n)
    row_update_pair_step<P, V, Overwrite, true>(dhp, qp, a0, c0, w0, v0, dv0, a1, c1, w1, v1, dv1, d,
                                                first_lanes(n - d), next, n_ahead);
}

// Up to 5 points a pass: 4·5 + 2 broadcast coefficients, 4 accumulators and 2 loads fit the 32
// registers.
inline constexpr index_t max_points_per_pair_pass = 5;
template <bool V, bool Overwrite>
ATTNRES_AVX512 inline void row_update_pair_n(index_t P, const float* const* dh, const float* const* q,
                                             const float* alpha0, const float* k0, float kv0, const float* v0,
                                             float* dv0, const float* alpha1, const float* k1, float kv1,
                                             const float* v1, float* dv1, index_t n, const float* const* ahead,
                                             int n_ahead) {
  switch (P) {
#define ATTNRES_PAIR_CASE(K)                                                                                      \
  case K:                                                                                                         \
    return row_update_pair<K, V, Overwrite>(dh, q, alpha0, k0, kv0, v0, dv0, alpha1, k1, kv1, v1, dv1, n, ahead, \
                                            n_ahead);
    ATTNRES_PAIR_CASE(1)
    ATTNRES_PAIR_CASE(2)
    ATTNRES_PAIR_CASE(3)
    ATTNRES_PAIR_CASE(4)
    default: ATTNRES_PAIR_CASE(5)
#undef ATTNRES_PAIR_CASE
  }
}

// S outputs o_p = Σ_j w[p·m + j]·x_j in one pass: each row x_j is loaded once for all S (Phase
// 1's S queries over the same sources).
template <int S, bool Masked>
ATTNRES_AVX512 __attribute__((always_inline)) inline void weighted_sums_step(const float* const* x, const float* w,
                                                                            index_t m, index_t d, __mmask16 mask,
                                                                            float* const* out) {
  __m512 acc[S];
  for (int p = 0; p < S; ++p) acc[p] = _mm512_setzero_ps();
  for (index_t j = 0; j < m; ++j) {
    const __m512 v = load<Masked>(x[j] + d, mask);
    for (int p = 0; p < S; ++p) acc[p] = _mm512_fmadd_ps(_mm512_set1_ps(w[p * m + j]), v, acc[p]);
  }
  for (int p = 0; p < S; ++p) store<Masked>(out[p] + d, mask, acc[p]);
}
template <int S>
ATTNRES_AVX512 inline void weighted_sums(const float* const* x, const float* w, index_t m, index_t n,
                                         float* const* out) {
  index_t d = 0;
  for (; d + width <= n; d += width) weighted_sums_step<S, false>(x, w, m, d, 0, out);
  if (d < n) weighted_sums_step<S, true>(x, w, m, d, first_lanes(n - d), out);
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

// out[k] = Σ_d v[d]·q[k][d] for k < m: v read once per 4 products. With `ahead`, the first
// pass over v also requests that row (n floats) a line at a time: a loop that reads a row per
// call and asks for a later one spreads its requests over its work this way, instead of a burst
// of prefetches that waits on the core's few miss buffers (Phase 1: −40 % on rows from memory,
// docs/performance.md round 19).
ATTNRES_AVX512 inline void dots_with(const float* v, const float* const* q, index_t m, index_t n, float* out,
                                     const float* ahead = nullptr) {
  index_t k = 0;
  for (; k + 4 <= m; k += 4, ahead = nullptr) detail::dots_with<4>(v, q + k, n, out + k, ahead);
  switch (m - k) {
    case 3: detail::dots_with<3>(v, q + k, n, out + k, ahead); break;
    case 2: detail::dots_with<2>(v, q + k, n, out + k, ahead); break;
    case 1: detail::dots_with<1>(v, q + k, n, out + k, ahead); break;
    default: break;
  }
}

// out[k] = Σ_d w[d]·g[d]·x[k][d] for k < m, without a buffer for w ⊙ g: rows in passes of up to 9
ATTNRES_AVX512 inline void folded_dots(const float* w, const float* g, const float* const* x, index_t m, index_t n,
                                       float* out) {
  for (index_t k = 0; k < m; k += 9) {
    switch (m - k) {
      case 1: detail::folded_dots<1>(w, g, x + k, n, out + k); break;
      case 2: detail::folded_dots<2>(w, g, x + k, n, out + k); break;
      case 3: detail::folded_dots<3>(w, g, x + k, n, out + k); break;
      case 4: detail::folded_dots<4>(w, g, x + k, n, out + k); break;
      case 5: detail::folded_dots<5>(w, g, x + k, n, out + k); break;
      case 6: detail::folded_dots<6>(w, g, x + k, n, out + k); break;
      case 7: detail::folded_dots<7>(w, g, x + k, n, out + k); break;
      case 8: detail::folded_dots<8>(w, g, x + k, n, out + k); break;
      default: detail::folded_dots<9>(w, g, x + k, n, out + k); break;
    }
  }
}

// out0[k] = Σ_d v0[d]·q[k][d] and out1[k] = Σ_d v1[d]·q[k][d] for k < m: each q row read once
// for both, up to 6 products a pass (12 accumulators)
ATTNRES_AVX512 inline void dots_with_pair(const float* v0, const float* v1, const float* const* q, index_t m,
                                          index_t n, float* out0, float* out1) {
  for (index_t k = 0; k < m; k += 6) {
    switch (m - k) {
      case 1: detail::dots_with_pair<1>(v0, v1, q + k, n, out0 + k, out1 + k); break;
      case 2: detail::dots_with_pair<2>(v0, v1, q + k, n, out0 + k, out1 + k); break;
      case 3: detail::dots_with_pair<3>(v0, v1, q + k, n, out0 + k, out1 + k); break;
      case 4: detail::dots_with_pair<4>(v0, v1, q + k, n, out0 + k, out1 + k); break;
      case 5: detail::dots_with_pair<5>(v0, v1, q + k, n, out0 + k, out1 + k); break;
      default: detail::dots_with_pair<6>(v0, v1, q + k, n, out0 + k, out1 + k); break;
    }
  }
}

// The backward's row update for two sources of one token (see detail::row_update_pair), S
// points in passes of up to 5. The first pass also asks for up to 4 rows of n floats (`ahead`,
// the next token's rows) a line per step: spread over the pass, the requests do not all wait
// for the core's few miss buffers at once as a burst of prefetches before it would (on rows from
// memory: −18 % for the backward pass, docs/performance.md round 19).
template <bool Overwrite>
ATTNRES_AVX512 inline void row_update_pair(index_t S, const float* const* dh, const float* const* q,
                                           const float* alpha0, const float* k0, float kv0, const float* v0,
                                           float* dv0, const float* alpha1, const float* k1, float kv1,
                                           const float* v1, float* dv1, index_t n, const float* const* ahead = nullptr,
                                           int n_ahead = 0) {
  constexpr index_t P = detail::max_points_per_pair_pass;
  detail::row_update_pair_n<true, Overwrite>(S < P ? S : P, dh, q, alpha0, k0, kv0, v0, dv0, alpha1, k1, kv1, v1, dv1, n,
                                             ahead, n_ahead);
  for (index_t p = P; p < S; p += P)
    detail::row_update_pair_n<false, false>(S - p < P ? S - p : P, dh + p, q + p, alpha0 + p, k0 + p, kv0, v0, dv0,
                                            alpha1 + p, k1 + p, kv1, v1, dv1, n, nullptr, 0);
}

// out[p] = Σ_{j<m} w[p·m + j]·x[j] for p < S: S weighted sums of the same m rows, each row
// read once per 4 of them
ATTNRES_AVX512 inline void weighted_sums(const float* const* x, const float* w, index_t m, index_t S, index_t n,
                                         float* const* out) {
  for (index_t p = 0; p < S; p += 4) {
    switch (S - p) {
      case 1: detail::weighted_sums<1>(x, w + p * m, m, n, out + p); break;
      case 2: detail::weighted_sums<2>(x, w + p * m, m, n, out + p); break;
      case 3: detail::weighted_sums<3>(x, w + p * m, m, n, out + p); break;
      default: detail::weighted_sums<4>(x, w + p * m, m, n, out + p); break;
    }
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
