#pragma once
// RoPE, reference path: plain loops over rows, heads and channel pairs, templated on the scalar
// (double for gradient checks). The contract is in ops/rope.hpp.

#include <attnres/core/backend.hpp>
#include <attnres/core/error.hpp>
#include <attnres/core/tensor.hpp>

#include <cmath>

namespace attnres::ops {

namespace detail {
// Checks the (B·T, H·Dh) layout RoPE needs and returns Dh. `what` names the view in errors.
inline index_t rope_check(const char* op, const char* what, index_t rows, index_t cols, index_t seq_len, index_t H,
                          double theta) {
  expects<shape_error>(seq_len >= 1, op, ": sequence length T = ", seq_len, " must be at least 1");
  expects<shape_error>(H >= 1, op, ": number of heads H = ", H, " must be at least 1");
  expects<shape_error>(cols > 0 && cols % H == 0, op, ": ", what, " has ", cols,
                       " columns, which is not H·Dh for H = ", H, " heads");
  const index_t Dh = cols / H;
  expects<shape_error>(Dh % 2 == 0, op, ": head dim Dh = ", Dh, " is odd; RoPE rotates channel pairs (j, j + Dh/2)");
  expects<shape_error>(rows % seq_len == 0, op, ": ", what, " has ", rows, " rows, which is not a multiple of T = ",
                       seq_len, " (rows are B·T tokens)");
  expects<config_error>(theta > 0 && std::isfinite(theta), op, ": theta = ", theta, " must be positive and finite");
  return Dh;
}

// Rotates every pair (j, j+half) of every head of x by sign·angle_j, angle_j = pos·θ^(−2j/Dh).
template <class T>
void rope_rotate_reference(matrix_view<T> x /*(B·T, H·Dh)*/, index_t seq_len, index_t H, index_t Dh, index_t pos0,
                           double theta, double sign) {
  const index_t half = Dh / 2;
  for (index_t r = 0; r < x.rows; ++r) {
    const double pos = static_cast<double>(pos0 + r % seq_len);
    for (index_t h = 0; h < H; ++h) {
      T* xh = x.row(r) + h * Dh;  // (Dh)
      for (index_t j = 0; j < half; ++j) {
        const double angle = pos * std::pow(theta, -2.0 * static_cast<double>(j) / static_cast<double>(Dh));
        const T c = static_cast<T>(std::cos(angle)), s = static_cast<T>(sign * std::sin(angle));
        const T a = xh[j], b = xh[j + half];
        xh[j] = a * c - b * s;
        xh[j + half] = b * c + a * s;
      }
    }
  }
}
}  // namespace detail

// x ← R x: every head of every token rotated by its position's angles.
template <class T>
void rope_forward(backend::reference, matrix_view<T> x /*(B·T, H·Dh)*/, index_t seq_len, index_t H, index_t pos0,
                  double theta) {
  expects<shape_error>(pos0 >= 0, "rope_forward: the first position ", pos0, " is negative");
  const index_t Dh = detail::rope_check("rope_forward", "x", x.rows, x.cols, seq_len, H, theta);
  detail::rope_rotate_reference(x, seq_len, H, Dh, pos0, theta, +1.0);
}

// dx ← Rᵀ dx: the rotation by −angle.
template <class T>
void rope_backward(backend::reference, matrix_view<T> dx /*(B·T, H·Dh)*/, index_t seq_len, index_t H, index_t pos0,
                   double theta) {
  expects<shape_error>(pos0 >= 0, "rope_backward: the first position ", pos0, " is negative");
  const index_t Dh = detail::rope_check("rope_backward", "dx", dx.rows, dx.cols, seq_len, H, theta);
  detail::rope_rotate_reference(dx, seq_len, H, Dh, pos0, theta, -1.0);
}

}  // namespace attnres::ops
