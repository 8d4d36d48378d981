#pragma once
// Activations, reference path: plain loops templated on the scalar (the oracle). Contract and
// formulas: ops/activation.hpp.

#include <attnres/core/backend.hpp>
#include <attnres/core/error.hpp>
#include <attnres/core/tensor.hpp>
#include <attnres/ops/depth_attention_types.hpp>  // no_deduce

#include <cmath>
#include <numbers>

namespace attnres::ops {

namespace activation_detail {
template <class T>
void check(const char* op, const_matrix_view<T> a, const char* a_name, const_matrix_view<T> b, const char* b_name) {
  expects<shape_error>(a.rows == b.rows && a.cols == b.cols, op, ": ", b_name, " is (", b.rows, ",", b.cols,
                       ") but ", a_name, " is (", a.rows, ",", a.cols, ")");
}

template <class T>
T sigmoid(T z) {
  return T(1) / (T(1) + std::exp(-z));
}
}  // namespace activation_detail

template <class T>
void swiglu_forward(backend::reference, no_deduce<const_matrix_view<T>> gate /*(M,F)*/,
                    no_deduce<const_matrix_view<T>> up /*(M,F)*/, matrix_view<T> out /*(M,F)*/) {
  activation_detail::check<T>("swiglu_forward", gate, "gate", up, "up");
  activation_detail::check<T>("swiglu_forward", gate, "gate", out, "out");
  for (index_t t = 0; t < gate.rows; ++t)
    for (index_t f = 0; f < gate.cols; ++f) {
      const T z = gate(t, f);
      out(t, f) = z * activation_detail::sigmoid(z) * up(t, f);
    }
}

// d silu(z)/dz = σ(z) + z σ(z)(1 − σ(z)) = σ(z)(1 + z(1 − σ(z)))
template <class T>
void swiglu_backward(backend::reference, no_deduce<const_matrix_view<T>> gate /*(M,F)*/,
                     no_deduce<const_matrix_view<T>> up /*(M,F)*/, no_deduce<const_matrix_view<T>> dout /*(M,F)*/,
                     matrix_view<T> dgate /*(M,F)*/, matrix_view<T> dup /*(M,F)*/) {
  activation_detail::check<T>("swiglu_backward", gate, "gate", up, "up");
  activation_detail::check<T>("swiglu_backward", gate, "gate", dout, "dout");
  activation_detail::check<T>("swiglu_backward", gate, "gate", dgate, "dgate");
  activation_detail::check<T>("swiglu_backward", gate, "gate", dup, "dup");
  for (index_t t = 0; t < gate.rows; ++t)
    for (index_t f = 0; f < gate.cols; ++f) {
      const T z = gate(t, f), u = up(t, f), g = dout(t, f);
      const T s = activation_detail::sigmoid(z);
      dgate(t, f) = g * u * s * (T(1) + z * (T(1) - s));
      dup(t, f) = g * z * s;
    }
}

template <class T>
void gelu_forward(backend::reference, no_deduce<const_matrix_view<T>> x /*(M,F)*/, matrix_view<T> y /*(M,F)*/) {
  activation_detail::check<T>("gelu_forward", x, "x", y, "y");
  for (index_t t = 0; t < x.rows; ++t)
    for (index_t f = 0; f < x.cols; ++f) {
      const T v = x(t, f);
      y(t, f) = T(0.5) * v * (T(1) + std::erf(v / std::numbers::sqrt2_v<T>));
    }
}

// d(x Φ(x))/dx = Φ(x) + x φ(x)
template <class T>
void gelu_backward(backend::reference, no_deduce<const_matrix_view<T>> x /*(M,F)*/,
                   no_deduce<const_matrix_view<T>> dy /*(M,F)*/, matrix_view<T> dx /*(M,F)*/) {
  activation_detail::check<T>("gelu_backward", x, "x", dy, "dy");
  activation_detail::check<T>("gelu_backward", x, "x", dx, "dx");
  const T inv_sqrt_2pi = std::numbers::inv_sqrtpi_v<T> / std::numbers::sqrt2_v<T>;
  for (index_t t = 0; t < x.rows; ++t)
    for (index_t f = 0; f < x.cols; ++f) {
      const T v = x(t, f);
      const T cdf = T(0.5) * (T(1) + std::erf(v / std::numbers::sqrt2_v<T>));
      const T pdf = inv_sqrt_2pi * std::exp(T(-0.5) * v * v);
      dx(t, f) = dy(t, f) * (cdf + v * pdf);
    }
}

}  // namespace attnres::ops
