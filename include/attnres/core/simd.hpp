#pragma once
// Vector kernels over one row of D numbers, written once with xsimd and a scalar tail, so D
// need not be a multiple of the SIMD width. The widths follow the compiler's target flags
// (build with -march=native, the CMake option ATTNRES_NATIVE, to get AVX2/AVX-512).

#include <attnres/core/tensor.hpp>

#include <xsimd/xsimd.hpp>

#include <utility>

namespace attnres::simd {

template <class T>
using batch = xsimd::batch<T>;

template <class T>
inline constexpr index_t width = static_cast<index_t>(batch<T>::size);

// Σ_d a[d]·b[d]
template <class T>
inline T dot(const T* a, const T* b, index_t n) {
  constexpr index_t W = width<T>;
  batch<T> acc0(T(0)), acc1(T(0));  // two accumulators hide the FMA latency
  index_t d = 0;
  for (; d + 2 * W <= n; d += 2 * W) {
    acc0 = xsimd::fma(batch<T>::load_unaligned(a + d), batch<T>::load_unaligned(b + d), acc0);
    acc1 = xsimd::fma(batch<T>::load_unaligned(a + d + W), batch<T>::load_unaligned(b + d + W), acc1);
  }
  for (; d + W <= n; d += W)
    acc0 = xsimd::fma(batch<T>::load_unaligned(a + d), batch<T>::load_unaligned(b + d), acc0);
  T s = xsimd::hadd(acc0 + acc1);
  for (; d < n; ++d) s += a[d] * b[d];
  return s;
}

// (Σ_d v[d]·a[d], Σ_d v[d]·b[d]): two dot products sharing one read of v
template <class T>
inline std::pair<T, T> dot2(const T* v, const T* a, const T* b, index_t n) {
  constexpr index_t W = width<T>;
  batch<T> acc_a(T(0)), acc_b(T(0));
  index_t d = 0;
  for (; d + W <= n; d += W) {
    const auto vv = batch<T>::load_unaligned(v + d);
    acc_a = xsimd::fma(vv, batch<T>::load_unaligned(a + d), acc_a);
    acc_b = xsimd::fma(vv, batch<T>::load_unaligned(b + d), acc_b);
  }
  T sa = xsimd::hadd(acc_a), sb = xsimd::hadd(acc_b);
  for (; d < n; ++d) {
    sa += v[d] * a[d];
    sb += v[d] * b[d];
  }
  return {sa, sb};
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

}  // namespace attnres::simd
