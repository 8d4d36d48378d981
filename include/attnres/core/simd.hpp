#pragma once
// Vector kernels over one row of D numbers, written once with xsimd and a scalar tail, so D
// need not be a multiple of the SIMD width. The widths follow the compiler's target flags
// (build with -march=native, the CMake option ATTNRES_NATIVE, to get AVX2/AVX-512).

#include <attnres/core/tensor.hpp>

#include <xsimd/xsimd.hpp>

#include <limits>
#include <utility>

namespace attnres::simd {

template <class T>
using batch = xsimd::batch<T>;

template <class T>
inline constexpr index_t width = static_cast<index_t>(batch<T>::size);

// Σ_d a[d]·b[d]
// Four accumulators: an FMA's result is ready only ~4 cycles later and two can start per cycle,
// so one accumulator would leave the FMA units idle most of the time (a dot is a dependency
// chain through its accumulator; out-of-order execution cannot overlap it).
template <class T>
inline T dot(const T* a, const T* b, index_t n) {
  using B = batch<T>;
  constexpr index_t W = width<T>;
  B acc0(T(0)), acc1(T(0)), acc2(T(0)), acc3(T(0));
  index_t d = 0;
  for (; d + 4 * W <= n; d += 4 * W) {
    acc0 = xsimd::fma(B::load_unaligned(a + d), B::load_unaligned(b + d), acc0);
    acc1 = xsimd::fma(B::load_unaligned(a + d + W), B::load_unaligned(b + d + W), acc1);
    acc2 = xsimd::fma(B::load_unaligned(a + d + 2 * W), B::load_unaligned(b + d + 2 * W), acc2);
    acc3 = xsimd::fma(B::load_unaligned(a + d + 3 * W), B::load_unaligned(b + d + 3 * W), acc3);
  }
  for (; d + W <= n; d += W) acc0 = xsimd::fma(B::load_unaligned(a + d), B::load_unaligned(b + d), acc0);
  T s = xsimd::hadd((acc0 + acc1) + (acc2 + acc3));
  for (; d < n; ++d) s += a[d] * b[d];
  return s;
}

// (Σ_d v[d]·a[d], Σ_d v[d]·b[d]): two dot products sharing one read of v, two accumulators each
template <class T>
inline std::pair<T, T> dot2(const T* v, const T* a, const T* b, index_t n) {
  using B = batch<T>;
  constexpr index_t W = width<T>;
  B acc_a0(T(0)), acc_a1(T(0)), acc_b0(T(0)), acc_b1(T(0));
  index_t d = 0;
  for (; d + 2 * W <= n; d += 2 * W) {
    const B v0 = B::load_unaligned(v + d), v1 = B::load_unaligned(v + d + W);
    acc_a0 = xsimd::fma(v0, B::load_unaligned(a + d), acc_a0);
    acc_b0 = xsimd::fma(v0, B::load_unaligned(b + d), acc_b0);
    acc_a1 = xsimd::fma(v1, B::load_unaligned(a + d + W), acc_a1);
    acc_b1 = xsimd::fma(v1, B::load_unaligned(b + d + W), acc_b1);
  }
  for (; d + W <= n; d += W) {
    const B v0 = B::load_unaligned(v + d);
    acc_a0 = xsimd::fma(v0, B::load_unaligned(a + d), acc_a0);
    acc_b0 = xsimd::fma(v0, B::load_unaligned(b + d), acc_b0);
  }
  T sa = xsimd::hadd(acc_a0 + acc_a1), sb = xsimd::hadd(acc_b0 + acc_b1);
  for (; d < n; ++d) {
    sa += v[d] * a[d];
    sb += v[d] * b[d];
  }
  return {sa, sb};
}

namespace detail {
// K dot products of one row v with K rows q_k, sharing every load of v. An FMA's result is ready
// ~4 cycles later and two start per cycle, so about 8 chains keep both FMA units busy: 4 per
// product for K ≤ 2, 2 per product for K = 3, 4 (each chain is a dependency through its
// accumulator). The row pointers are copied into locals first: an intrinsic store or load may
// alias anything, so pointers read through q inside the loop would be reloaded at every step.
template <int K, class T>
inline void dots_with(const T* v, const T* const* q, index_t n, T* out) {
  using B = batch<T>;
  constexpr index_t W = width<T>;
  constexpr int C = K <= 2 ? 4 : 2;  // chains per product
  const T* qk[K];
  B acc[C][K];
  for (int k = 0; k < K; ++k) {
    qk[k] = q[k];
    for (int c = 0; c < C; ++c) acc[c][k] = B(T(0));
  }
  index_t d = 0;
  for (; d + C * W <= n; d += C * W)
    for (int c = 0; c < C; ++c) {
      const B vc = B::load_unaligned(v + d + c * W);
      for (int k = 0; k < K; ++k) acc[c][k] = xsimd::fma(vc, B::load_unaligned(qk[k] + d + c * W), acc[c][k]);
    }
  for (; d + W <= n; d += W) {
    const B vv = B::load_unaligned(v + d);
    for (int k = 0; k < K; ++k) acc[0][k] = xsimd::fma(vv, B::load_unaligned(qk[k] + d), acc[0][k]);
  }
  for (int k = 0; k < K; ++k) {
    B sum = acc[0][k];
    for (int c = 1; c < C; ++c) sum += acc[c][k];
    T s = xsimd::hadd(sum);
    for (index_t e = d; e < n; ++e) s += v[e] * qk[k][e];
    out[k] = s;
  }
}

// out (=|+=) Σ_{k<K} w_k·x_k, one pass over out for K rows. Above 4 rows the sum is split over
// two accumulators (even and odd k) so that no FMA chain is longer than 4.
template <int K, bool Accumulate, class T>
inline void weighted_rows(const T* const* x, const T* w, index_t n, T* out) {
  using B = batch<T>;
  constexpr index_t W = width<T>;
  B wk[K];
  const T* xk[K];  // locals: the stores to out could otherwise alias x and force reloads
  for (int k = 0; k < K; ++k) wk[k] = B(w[k]), xk[k] = x[k];
  index_t d = 0;
  for (; d + W <= n; d += W) {
    B acc = Accumulate ? B::load_unaligned(out + d) : B(T(0));
    if constexpr (K > 4) {
      B odd = wk[1] * B::load_unaligned(xk[1] + d);
      for (int k = 0; k < K; k += 2) acc = xsimd::fma(wk[k], B::load_unaligned(xk[k] + d), acc);
      for (int k = 3; k < K; k += 2) odd = xsimd::fma(wk[k], B::load_unaligned(xk[k] + d), odd);
      acc += odd;
    } else {
      for (int k = 0; k < K; ++k) acc = xsimd::fma(wk[k], B::load_unaligned(xk[k] + d), acc);
    }
    acc.store_unaligned(out + d);
  }
  for (; d < n; ++d) {
    T acc = Accumulate ? out[d] : T(0);
    for (int k = 0; k < K; ++k) acc += w[k] * xk[k][d];
    out[d] = acc;
  }
}
}  // namespace detail

// out[k] = Σ_d v[d]·q[k][d] for k < m: m dot products with one row v, v read once per 4 of them.
template <class T>
inline void dots_with(const T* v, const T* const* q, index_t m, index_t n, T* out) {
  index_t k = 0;
  for (; k + 4 <= m; k += 4) detail::dots_with<4>(v, q + k, n, out + k);
  switch (m - k) {
    case 3: detail::dots_with<3>(v, q + k, n, out + k); break;
    case 2: detail::dots_with<2>(v, q + k, n, out + k); break;
    case 1: out[k] = dot(v, q[k], n); break;  // one chain: the four-accumulator dot
    default: break;
  }
}

namespace detail {
// weighted_rows for r = 1 .. 8 rows (r > 8 takes 8)
template <bool Accumulate, class T>
inline void weighted_rows_n(index_t r, const T* const* x, const T* w, index_t n, T* out) {
  switch (r) {
    case 1: return weighted_rows<1, Accumulate>(x, w, n, out);
    case 2: return weighted_rows<2, Accumulate>(x, w, n, out);
    case 3: return weighted_rows<3, Accumulate>(x, w, n, out);
    case 4: return weighted_rows<4, Accumulate>(x, w, n, out);
    case 5: return weighted_rows<5, Accumulate>(x, w, n, out);
    case 6: return weighted_rows<6, Accumulate>(x, w, n, out);
    case 7: return weighted_rows<7, Accumulate>(x, w, n, out);
    default: return weighted_rows<8, Accumulate>(x, w, n, out);
  }
}
}  // namespace detail

// out = Σ_{k<m} w[k]·x[k]: a weighted sum of m rows (m ≥ 1), out written once per 8 rows
// (8 broadcast weights and an accumulator fit the 16 vector registers of AVX2).
template <class T>
inline void weighted_sum(const T* const* x, const T* w, index_t m, index_t n, T* out) {
  detail::weighted_rows_n<false>(m < 8 ? m : 8, x, w, n, out);
  for (index_t k = 8; k < m; k += 8) detail::weighted_rows_n<true>(m - k, x + k, w + k, n, out);
}

// out += Σ_{k<m} w[k]·x[k] (m ≥ 0), out read and written once per 8 rows.
template <class T>
inline void add_weighted_sum(const T* const* x, const T* w, index_t m, index_t n, T* out) {
  for (index_t k = 0; k < m; k += 8) detail::weighted_rows_n<true>(m - k, x + k, w + k, n, out);
}

// weighted_sum of K rows, K known at compile time: one pass, the weights in registers.
template <int K, class T>
inline void weighted_sum_of(const T* const* x, const T* w, index_t n, T* out) {
  detail::weighted_rows<K, false>(x, w, n, out);
}

// Room for n numbers rounded up to whole SIMD batches (what softmax_padded works on).
template <class T>
inline constexpr index_t padded(index_t n) {
  return (n + width<T> - 1) / width<T> * width<T>;
}

// a[0..n) ← softmax(a[0..n)) (n ≥ 1), e^x a batch at a time. a has room for padded<T>(n)
// numbers; the padding is set to −∞ first, so its e^x is 0 and it leaves the sum alone.
// xsimd's exp is within ~1 ulp of std::exp and flushes results below the smallest normal
// (e^−87 in float) to 0 — a weight no float sum with a 1 in it can see.
template <class T>
inline void softmax_padded(T* a, index_t n) {
  using B = batch<T>;
  constexpr index_t W = width<T>;
  const index_t P = padded<T>(n);
  T m = a[0];
  for (index_t j = 1; j < n; ++j) m = a[j] > m ? a[j] : m;
  for (index_t j = n; j < P; ++j) a[j] = -std::numeric_limits<T>::infinity();
  const B vm(m);
  B z(T(0));
  for (index_t j = 0; j < P; j += W) {
    const B e = xsimd::exp(B::load_unaligned(a + j) - vm);
    e.store_unaligned(a + j);
    z += e;
  }
  const B zinv(T(1) / xsimd::hadd(z));
  for (index_t j = 0; j < P; j += W) (B::load_unaligned(a + j) * zinv).store_unaligned(a + j);
}

// Σ_d a[d]²
template <class T>
inline T sum_squares(const T* a, index_t n) {
  return dot(a, a, n);
}

// y += alpha·x
template <class T>
inline void axpy(T alpha, const T* x, T* y, index_t n) {
  constexpr index_t W = width<T>;
  const batch<T> va(alpha);
  index_t d = 0;
  for (; d + W <= n; d += W)
    xsimd::fma(va, batch<T>::load_unaligned(x + d), batch<T>::load_unaligned(y + d)).store_unaligned(y + d);
  for (; d < n; ++d) y[d] += alpha * x[d];
}

// y = beta·y + alpha·x   (the online-softmax rescale-and-add)
template <class T>
inline void axpby(T alpha, const T* x, T beta, T* y, index_t n) {
  constexpr index_t W = width<T>;
  const batch<T> va(alpha), vb(beta);
  index_t d = 0;
  for (; d + W <= n; d += W)
    xsimd::fma(va, batch<T>::load_unaligned(x + d), vb * batch<T>::load_unaligned(y + d)).store_unaligned(y + d);
  for (; d < n; ++d) y[d] = beta * y[d] + alpha * x[d];
}

// y = alpha·x
template <class T>
inline void scale_to(T alpha, const T* x, T* y, index_t n) {
  constexpr index_t W = width<T>;
  const batch<T> va(alpha);
  index_t d = 0;
  for (; d + W <= n; d += W) (va * batch<T>::load_unaligned(x + d)).store_unaligned(y + d);
  for (; d < n; ++d) y[d] = alpha * x[d];
}

// out[d] = a[d]·b[d]
template <class T>
inline void multiply(const T* a, const T* b, T* out, index_t n) {
  constexpr index_t W = width<T>;
  index_t d = 0;
  for (; d + W <= n; d += W)
    (batch<T>::load_unaligned(a + d) * batch<T>::load_unaligned(b + d)).store_unaligned(out + d);
  for (; d < n; ++d) out[d] = a[d] * b[d];
}

// y += x
template <class T>
inline void add(const T* x, T* y, index_t n) {
  constexpr index_t W = width<T>;
  index_t d = 0;
  for (; d + W <= n; d += W)
    (batch<T>::load_unaligned(y + d) + batch<T>::load_unaligned(x + d)).store_unaligned(y + d);
  for (; d < n; ++d) y[d] += x[d];
}

// out = a + b   (out may be a or b)
template <class T>
inline void sum_to(const T* a, const T* b, T* out, index_t n) {
  constexpr index_t W = width<T>;
  index_t d = 0;
  for (; d + W <= n; d += W)
    (batch<T>::load_unaligned(a + d) + batch<T>::load_unaligned(b + d)).store_unaligned(out + d);
  for (; d < n; ++d) out[d] = a[d] + b[d];
}

// out = a + b, returning Σ_d out[d]²: a block sum and its key-norm statistic in one pass
// (out may be a or b)
template <class T>
inline T sum_to_squares(const T* a, const T* b, T* out, index_t n) {
  using B = batch<T>;
  constexpr index_t W = width<T>;
  B acc0(T(0)), acc1(T(0));  // two chains: the FMA's latency
  index_t d = 0;
  for (; d + 2 * W <= n; d += 2 * W) {
    const B s0 = B::load_unaligned(a + d) + B::load_unaligned(b + d);
    const B s1 = B::load_unaligned(a + d + W) + B::load_unaligned(b + d + W);
    s0.store_unaligned(out + d);
    s1.store_unaligned(out + d + W);
    acc0 = xsimd::fma(s0, s0, acc0);
    acc1 = xsimd::fma(s1, s1, acc1);
  }
  for (; d + W <= n; d += W) {
    const B s0 = B::load_unaligned(a + d) + B::load_unaligned(b + d);
    s0.store_unaligned(out + d);
    acc0 = xsimd::fma(s0, s0, acc0);
  }
  T ss = xsimd::hadd(acc0 + acc1);
  for (; d < n; ++d) {
    const T x = a[d] + b[d];
    out[d] = x;
    ss += x * x;
  }
  return ss;
}

// Asks the caches for a row of D numbers, a line at a time, unrolled by 4 lines: the loops call
// this for several rows per token, and a loop of one prefetch per iteration cost them 10–20 %
// in cache (depth attention's Phase 1, D = 256: 16 iterations a row) and 3.5–4.5 % of a decode
// step (the matrix-vector path's row requests, docs/performance.md round 26).
template <class T>
inline void prefetch_row(const T* row, index_t D) {
  constexpr index_t line = 64 / static_cast<index_t>(sizeof(T));
  index_t d = 0;
  for (; d + 4 * line <= D; d += 4 * line) {
    __builtin_prefetch(row + d);
    __builtin_prefetch(row + d + line);
    __builtin_prefetch(row + d + 2 * line);
    __builtin_prefetch(row + d + 3 * line);
  }
  for (; d < D; d += line) __builtin_prefetch(row + d);
}

}  // namespace attnres::simd
