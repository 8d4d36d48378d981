#pragma once
// AdamW, one element at a time: the arithmetic of the CUDA kernel, for host and device.
// Contract: ops/adamw.hpp. The scalar coefficients are rounded to T once, on the host, exactly
// as the reference does, so the element update matches it operation for operation.

#include <attnres/ops/cuda/row/hd.hpp>

namespace attnres::ops::row {

// Coefficients of one step: lr, β1, β2, ε, wd, 1 − β1, 1 − β2, and the bias corrections
// 1 − β1^t, 1 − β2^t.
template <class T>
struct adamw_coeffs {
  T lr, b1, b2, eps, wd, c1, c2, bc1, bc2;
};

// p ← p − lr·wd·p ;  m ← β1 m + (1−β1) g ;  v ← β2 v + (1−β2) g² ;  p ← p − lr m̂ / (√v̂ + ε)
template <class T>
ATTNRES_HD void adamw_elem(T* p, T g, T* m, T* v, const adamw_coeffs<T>& k) {
  *p -= k.lr * k.wd * *p;
  *m = k.b1 * *m + k.c1 * g;
  *v = k.b2 * *v + k.c2 * g * g;
  const T mhat = *m / k.bc1, vhat = *v / k.bc2;
  *p -= k.lr * mhat / (sqrt(vhat) + k.eps);
}

}  // namespace attnres::ops::row
