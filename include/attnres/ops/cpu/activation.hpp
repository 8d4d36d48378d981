#pragma once
// Activations, cpu path: xsimd over each row (exp and erf are vectorised in xsimd), parallel
// over rows. Tested equal to the reference in tests/ops/test_dense_ops.cpp.

#include <attnres/core/backend.hpp>
#include <attnres/core/parallel.hpp>
#include <attnres/core/simd.hpp>
#include <attnres/ops/depth_attention_types.hpp>  // no_deduce
#include <attnres/ops/reference/activation.hpp>   // shape checks, scalar tails

#include <algorithm>
#include <cmath>
#include <numbers>

namespace attnres::ops {

namespace activation_detail {
inline index_t row_grain(index_t F) { return std::max<index_t>(1, 4096 / std::max<index_t>(1, F)); }

// Calls vec(batch offset) for each full SIMD batch of a row and tail(element) for the rest,
// over every row of an (M,F) problem, rows split over threads.
template <class T, class Vec, class Tail>
void for_each_row(index_t M, index_t F, Vec&& vec, Tail&& tail) {
  constexpr index_t W = simd::width<T>;
  parallel_chunks(M, row_grain(F), [&](index_t, index_t begin, index_t end) {
    for (index_t t = begin; t < end; ++t) {
      index_t f = 0;
      for (; f + W <= F; f += W) vec(t, f);
      for (; f < F; ++f) tail(t, f);
    }
  });
}

template <class T>
simd::batch<T> sigmoid_batch(const simd::batch<T>& z) {
  return simd::batch<T>(T(1)) / (simd::batch<T>(T(1)) + xsimd::exp(-z));
}
}  // namespace activation_detail

template <class T>
void swiglu_forward(backend::cpu, no_deduce<const_matrix_view<T>> gate /*(M,F)*/,
                    no_deduce<const_matrix_view<T>> up /*(M,F)*/, matrix_view<T> out /*(M,F)*/) {
  using namespace activation_detail;
  using batch = simd::batch<T>;
  check<T>("swiglu_forward", gate, "gate", up, "up");
  check<T>("swiglu_forward", gate, "gate", out, "out");
  for_each_row<T>(
      gate.rows, gate.cols,
      [&](index_t t, index_t f) {
        const batch z = batch::load_unaligned(gate.row(t) + f);
        (z * sigmoid_batch(z) * batch::load_unaligned(up.row(t) + f)).store_unaligned(out.row(t) + f);
      },
      [&](index_t t, index_t f) {
        const T z = gate(t, f);
        out(t, f) = z * activation_detail::sigmoid(z) * up(t, f);
      });
}

template <class T>
void swiglu_backward(backend::cpu, no_deduce<const_matrix_view<T>> gate /*(M,F)*/,
                     no_deduce<const_matrix_view<T>> up /*(M,F)*/, no_deduce<const_matrix_view<T>> dout /*(M,F)*/,
                     matrix_view<T> dgate /*(M,F)*/, matrix_view<T> dup /*(M,F)*/) {
  using namespace activation_detail;
  using batch = simd::batch<T>;
  check<T>("swiglu_backward", gate, "gate", up, "up");
  check<T>("swiglu_backward", gate, "gate", dout, "dout");
  check<T>("swiglu_backward", gate, "gate", dgate, "dgate");
  check<T>("swiglu_backward", gate, "gate", dup, "dup");
  const batch one(T(1));
  for_each_row<T>(
      gate.rows, gate.cols,
      [&](index_t t, index_t f) {
        const batch z = batch::load_unaligned(gate.row(t) + f);
        const batch u = batch::load_unaligned(up.row(t) + f);
        const batch g = batch::load_unaligned(dout.row(t) + f);
        const batch s = sigmoid_batch(z);
        (g * u * s * xsimd::fma(z, one - s, one)).store_unaligned(dgate.row(t) + f);
        (g * z * s).store_unaligned(dup.row(t) + f);
      },
      [&](index_t t, index_t f) {
        const T z = gate(t, f), u = up(t, f), g = dout(t, f);
        const T s = activation_detail::sigmoid(z);
        dgate(t, f) = g * u * s * (T(1) + z * (T(1) - s));
        dup(t, f) = g * z * s;
      });
}

template <class T>
void gelu_forward(backend::cpu, no_deduce<const_matrix_view<T>> x /*(M,F)*/, matrix_view<T> y /*(M,F)*/) {
  using namespace activation_detail;
  using batch = simd::batch<T>;
  check<T>("gelu_forward", x, "x", y, "y");
  const T r2 = T(1) / std::numbers::sqrt2_v<T>;
  const batch half(T(0.5)), one(T(1)), vr2(r2);
  for_each_row<T>(
      x.rows, x.cols,
      [&](index_t t, index_t f) {
        const batch v = batch::load_unaligned(x.row(t) + f);
        (half * v * (one + xsimd::erf(v * vr2))).store_unaligned(y.row(t) + f);
      },
      [&](index_t t, index_t f) {
        const T v = x(t, f);
        y(t, f) = T(0.5) * v * (T(1) + std::erf(v * r2));
      });
}

template <class T>
void gelu_backward(backend::cpu, no_deduce<const_matrix_view<T>> x /*(M,F)*/,
                   no_deduce<const_matrix_view<T>> dy /*(M,F)*/, matrix_view<T> dx /*(M,F)*/) {
  using namespace activation_detail;
  using batch = simd::batch<T>;
  check<T>("gelu_backward", x, "x", dy, "dy");
  check<T>("gelu_backward", x, "x", dx, "dx");
  const T r2 = T(1) / std::numbers::sqrt2_v<T>;
  const T inv_sqrt_2pi = std::numbers::inv_sqrtpi_v<T> * r2;
  const batch half(T(0.5)), one(T(1)), vr2(r2), vc(inv_sqrt_2pi), mhalf(T(-0.5));
  for_each_row<T>(
      x.rows, x.cols,
      [&](index_t t, index_t f) {
        const batch v = batch::load_unaligned(x.row(t) + f);
        const batch cdf = half * (one + xsimd::erf(v * vr2));
        const batch pdf = vc * xsimd::exp(mhalf * v * v);
        (batch::load_unaligned(dy.row(t) + f) * xsimd::fma(v, pdf, cdf)).store_unaligned(dx.row(t) + f);
      },
      [&](index_t t, index_t f) {
        const T v = x(t, f);
        const T cdf = T(0.5) * (T(1) + std::erf(v * r2));
        const T pdf = inv_sqrt_2pi * std::exp(T(-0.5) * v * v);
        dx(t, f) = dy(t, f) * (cdf + v * pdf);
      });
}

}  // namespace attnres::ops
