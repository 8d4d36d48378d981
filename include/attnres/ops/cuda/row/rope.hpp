#pragma once
// RoPE, one (token, head) at a time: the arithmetic of the CUDA kernel, for host and device.
// Contract: ops/rope.hpp. Angles, cosines and sines in double, as in the reference.

#include <attnres/ops/cuda/row/hd.hpp>

namespace attnres::ops::row {

// Rotates the pairs (j, j + Dh/2) of one head by sign·angle_j, angle_j = pos·θ^(−2j/Dh):
//   x[j] ← x[j] cos − x[j+half] sin ;  x[j+half] ← x[j+half] cos + x[j] sin
// sign = +1 is the forward R, sign = −1 the backward Rᵀ.
template <class T>
ATTNRES_HD void rope_rotate_head(T* x /*(Dh)*/, index_t Dh, double pos, double theta, double sign) {
  const index_t half = Dh / 2;
  for (index_t j = 0; j < half; ++j) {
    const double angle = pos * pow(theta, -2.0 * static_cast<double>(j) / static_cast<double>(Dh));
    const T c = static_cast<T>(cos(angle)), s = static_cast<T>(sign * sin(angle));
    const T a = x[j], b = x[j + half];
    x[j] = a * c - b * s;
    x[j + half] = b * c + a * s;
  }
}

// One GPU thread: thread i < rows·H rotates head h = i % H of row r = i / H, at position
// pos0 + r mod T (rows are B·T tokens).
template <class T>
ATTNRES_HD void rope_thread(index_t i, T* x, index_t stride, index_t seq_len, index_t H, index_t Dh, index_t pos0,
                            double theta, double sign) {
  const index_t r = i / H, h = i % H;
  rope_rotate_head(x + r * stride + h * Dh, Dh, static_cast<double>(pos0 + r % seq_len), theta, sign);
}

}  // namespace attnres::ops::row
