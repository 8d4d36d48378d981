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

}  // namespace attnres::ops::row
