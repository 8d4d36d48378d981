#pragma once
// ATTNRES_HD and the few math functions the per-row code needs, callable from host and device.
//
// The CUDA kernels of ops/cuda/ are thin launch shells around the functions of ops/cuda/row/:
// each computes one row, one token, one (row, head) or one element. Under nvcc those functions
// are __host__ __device__; under a plain C++ compiler ATTNRES_HD is empty, so the CPU test suite
// runs exactly the arithmetic the GPU runs and compares it with the reference ops on every
// commit (tests/cuda/). Nothing here includes a CUDA header.

#include <cmath>
#include <cstddef>

#if defined(__CUDACC__)
#define ATTNRES_HD __host__ __device__
#else
#define ATTNRES_HD
#endif

namespace attnres::ops::row {

// Signed sizes, like attnres::index_t (core/index.hpp), without pulling in host-only headers.
using index_t = std::ptrdiff_t;

// std:: math is host-only; device code calls the CUDA math library's overloads of the same
// names. One wrapper per function keeps the row code free of #ifdefs.
#if defined(__CUDA_ARCH__)
#define ATTNRES_HD_MATH(fn)                                  \
  ATTNRES_HD inline float fn(float x) { return ::fn##f(x); } \
  ATTNRES_HD inline double fn(double x) { return ::fn(x); }
#else
#define ATTNRES_HD_MATH(fn)                                     \
  ATTNRES_HD inline float fn(float x) { return std::fn(x); } \
  ATTNRES_HD inline double fn(double x) { return std::fn(x); }
#endif
ATTNRES_HD_MATH(exp)
ATTNRES_HD_MATH(log)
ATTNRES_HD_MATH(sqrt)
ATTNRES_HD_MATH(erf)
ATTNRES_HD_MATH(cos)
ATTNRES_HD_MATH(sin)
#undef ATTNRES_HD_MATH

#if defined(__CUDA_ARCH__)
ATTNRES_HD inline double pow(double x, double y) { return ::pow(x, y); }
#else
ATTNRES_HD inline double pow(double x, double y) { return std::pow(x, y); }
#endif

template <class T>
ATTNRES_HD constexpr T max(T a, T b) {
  return a < b ? b : a;
}

// −∞ without <limits> (numeric_limits is not __device__ without relaxed constexpr).
template <class T>
ATTNRES_HD constexpr T neg_inf() {
  return -static_cast<T>(HUGE_VAL);
}

// Σ_d a[d] b[d]
template <class T>
ATTNRES_HD T dot(const T* a, const T* b, index_t n) {
  T s = 0;
  for (index_t d = 0; d < n; ++d) s += a[d] * b[d];
  return s;
}

}  // namespace attnres::ops::row
