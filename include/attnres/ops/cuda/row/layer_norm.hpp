#pragma once
// LayerNorm, one row (forward, backward dx) or one channel (backward dg, db) at a time: the
// arithmetic of the CUDA kernels, for host and device, in the reference's order of operations.
// Contract and formulas: ops/layer_norm.hpp.

#include <attnres/ops/cuda/row/hd.hpp>

namespace attnres::ops::row {

// μ = mean_d x ; s = 1/sqrt(mean_d (x − μ)² + ε) ; y = (x − μ) s g + b      (b may be null)
// Stores μ and s (saved for the backward) when the pointers are not null.
template <class T>
ATTNRES_HD void layer_norm_forward_row(const T* x /*(D)*/, const T* g /*(D)*/, const T* b /*(D) or null*/, T eps,
                                       index_t D, T* y /*(D)*/, T* mean, T* rstd) {
  T mu = 0;
  for (index_t d = 0; d < D; ++d) mu += x[d];
  mu /= T(D);
  T var = 0;
  for (index_t d = 0; d < D; ++d) var += (x[d] - mu) * (x[d] - mu);
  var /= T(D);
  const T s = T(1) / sqrt(var + eps);
  if (mean) *mean = mu;
  if (rstd) *rstd = s;
  for (index_t d = 0; d < D; ++d) y[d] = (x[d] - mu) * s * g[d] + (b ? b[d] : T(0));
}

// dx += s (dy g − m1 − x̂ m2),   x̂ = (x − μ) s,  m1 = mean_d dy g,  m2 = mean_d dy g x̂
template <class T>
ATTNRES_HD void layer_norm_backward_row(const T* x /*(D)*/, const T* g /*(D)*/, T mu, T s, const T* dy /*(D)*/,
                                        index_t D, T* dx /*(D)*/) {
  T m1 = 0, m2 = 0;
  for (index_t d = 0; d < D; ++d) {
    const T xh = (x[d] - mu) * s;
    m1 += dy[d] * g[d];
    m2 += dy[d] * g[d] * xh;
  }
  m1 /= T(D);
  m2 /= T(D);
  for (index_t d = 0; d < D; ++d) {
    const T xh = (x[d] - mu) * s;
    dx[d] += s * (dy[d] * g[d] - m1 - xh * m2);
  }
}

// dg[d] += Σ_t dy[t,d] x̂[t,d] ;  db[d] += Σ_t dy[t,d]      (one channel, tokens summed in order;
// either output may be null)
template <class T>
ATTNRES_HD void layer_norm_backward_channel(const T* x, index_t x_stride, const T* mean /*(M)*/, const T* rstd /*(M)*/,
                                            const T* dy, index_t dy_stride, index_t M, index_t d, T* dg /*(D)*/,
                                            T* db /*(D)*/) {
  T acc_g = 0, acc_b = 0;
  for (index_t t = 0; t < M; ++t) {
    const T g = dy[t * dy_stride + d];
    acc_g += g * ((x[t * x_stride + d] - mean[t]) * rstd[t]);
    acc_b += g;
  }
  if (dg) dg[d] += acc_g;
  if (db) db[d] += acc_b;
}

}  // namespace attnres::ops::row
