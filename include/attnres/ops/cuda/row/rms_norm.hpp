#pragma once
// RMSNorm, one row (forward, backward dx) or one channel (backward dg) at a time: the arithmetic
// of the CUDA kernels, for host and device. Contract and formulas: ops/rms_norm.hpp.

#include <attnres/ops/cuda/row/hd.hpp>

namespace attnres::ops::row {

// r = 1/sqrt(mean_d x² + ε) ;  y = x · r · g        returns r (saved for the backward)
template <class T>
ATTNRES_HD T rms_norm_forward_row(const T* x /*(D)*/, const T* g /*(D)*/, T eps, index_t D, T* y /*(D)*/) {
  const T r = T(1) / sqrt(dot(x, x, D) / T(D) + eps);
  for (index_t d = 0; d < D; ++d) y[d] = x[d] * r * g[d];
  return r;
}

// dx += r g ⊙ dy − (r³ a / D) x,   a = Σ_d dy g x ;   x_dot_dx = x · that increment
// = r a − r³ a ‖x‖² / D (either output may be null)
template <class T>
ATTNRES_HD void rms_norm_backward_row(const T* x /*(D)*/, const T* g /*(D)*/, T r, const T* dy /*(D)*/, index_t D,
                                      T* dx /*(D) or null*/, T* x_dot_dx = nullptr /*(1) or null*/) {
  T a = 0;
  for (index_t d = 0; d < D; ++d) a += dy[d] * g[d] * x[d];
  const T k = r * r * r * a / T(D);
  if (x_dot_dx) *x_dot_dx = r * a - k * dot(x, x, D);
  if (dx)
    for (index_t d = 0; d < D; ++d) dx[d] += r * g[d] * dy[d] - k * x[d];
}

// dg[d] += Σ_t dy[t,d] x[t,d] r_t      (one channel, tokens summed in order)
template <class T>
ATTNRES_HD void rms_norm_backward_channel(const T* x, index_t x_stride, const T* inv_rms /*(M)*/, const T* dy,
                                          index_t dy_stride, index_t M, index_t d, T* dg /*(D)*/) {
  T acc = 0;
  for (index_t t = 0; t < M; ++t) acc += dy[t * dy_stride + d] * x[t * x_stride + d] * inv_rms[t];
  dg[d] += acc;
}

}  // namespace attnres::ops::row
