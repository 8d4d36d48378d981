#pragma once
// Activations, one element at a time: the arithmetic of the CUDA kernels, for host and device.
// Contract and formulas: ops/activation.hpp.

#include <attnres/ops/cuda/row/hd.hpp>

namespace attnres::ops::row {

// Element i of a (rows, cols) view with row stride `stride`: the element kernels' index map.
ATTNRES_HD inline index_t element_offset(index_t i, index_t cols, index_t stride) { return (i / cols) * stride + i % cols; }

template <class T>
ATTNRES_HD T sigmoid(T z) {
  return T(1) / (T(1) + exp(-z));
}

// out = silu(gate) · up,  silu(z) = z σ(z)
template <class T>
ATTNRES_HD T swiglu_forward_elem(T gate, T up) {
  return gate * sigmoid(gate) * up;
}

// dgate = dout · up · σ(z)(1 + z(1 − σ(z))) ;  dup = dout · silu(z)
template <class T>
ATTNRES_HD void swiglu_backward_elem(T gate, T up, T dout, T* dgate, T* dup) {
  const T s = sigmoid(gate);
  const T dg = dout * up * s * (T(1) + gate * (T(1) - s));
  const T du = dout * gate * s;
  *dgate = dg;  // both computed before either is stored: outputs may alias the inputs
  *dup = du;
}

// y = ½ x (1 + erf(x/√2))  (exact GELU)
template <class T>
ATTNRES_HD T gelu_forward_elem(T x) {
  return T(0.5) * x * (T(1) + erf(x * T(0.70710678118654752440)));
}

// dx = dy (Φ(x) + x φ(x)),  φ(x) = e^{−x²/2}/√(2π)
template <class T>
ATTNRES_HD T gelu_backward_elem(T x, T dy) {
  const T cdf = T(0.5) * (T(1) + erf(x * T(0.70710678118654752440)));
  const T pdf = T(0.39894228040143267794) * exp(T(-0.5) * x * x);
  return dy * (cdf + x * pdf);
}

}  // namespace attnres::ops::row
