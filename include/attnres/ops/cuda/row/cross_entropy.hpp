#pragma once
// Softmax and cross-entropy, one row at a time: the arithmetic of the CUDA kernels, for host and
// device. Contract: ops/cross_entropy.hpp. Like the reference, the loss and the gradient are
// computed in double whatever T is (the row is read three times; V is the vocabulary).

#include <attnres/ops/cuda/row/hd.hpp>

#include <cstdint>

namespace attnres::ops::row {

// loss = lse − z[target],  lse = m + log Σ_j e^{z_j − m} ;  returned in double.
// When dz is not null: dz_j = (p_j − [j == target]) · k,  p_j = e^{z_j − lse},  k = grad_scale / M.
// dz may alias z exactly (z[target] is read before anything is written).
template <class T>
ATTNRES_HD double cross_entropy_row(const T* z /*(V)*/, index_t V, std::int32_t target, T* dz /*(V) or null*/,
                                    double k) {
  double m = neg_inf<double>();
  for (index_t j = 0; j < V; ++j) m = max(m, static_cast<double>(z[j]));
  double s = 0;
  for (index_t j = 0; j < V; ++j) s += exp(static_cast<double>(z[j]) - m);
  const double lse = m + log(s);
  const double loss = lse - static_cast<double>(z[target]);
  if (dz)
    for (index_t j = 0; j < V; ++j) {
      const double p = exp(static_cast<double>(z[j]) - lse);
      dz[j] = static_cast<T>((p - (j == target ? 1.0 : 0.0)) * k);
    }
  return loss;
}

// y = softmax(x), shifted by the row max; y may alias x exactly.
template <class T>
ATTNRES_HD void softmax_row(const T* x /*(V)*/, index_t V, T* y /*(V)*/) {
  T m = neg_inf<T>();
  for (index_t j = 0; j < V; ++j) m = max(m, x[j]);
  T s = 0;
  for (index_t j = 0; j < V; ++j) {
    y[j] = exp(x[j] - m);
    s += y[j];
  }
  const T inv = T(1) / s;
  for (index_t j = 0; j < V; ++j) y[j] *= inv;
}

}  // namespace attnres::ops::row
