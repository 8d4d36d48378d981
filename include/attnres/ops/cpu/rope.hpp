#pragma once
// RoPE, cpu path: cos/sin tables (positions × Dh/2) computed in double and rounded to the scalar,
// kept per thread across calls (rope_table), then every row rotated with xsimd over the channel
// pairs, rows in parallel (OpenMP).
// Tested equal to the reference on awkward sizes (tests/ops/test_attention_ops.cpp).

#include <attnres/core/backend.hpp>
#include <attnres/core/parallel.hpp>
#include <attnres/core/simd.hpp>
#include <attnres/ops/reference/rope.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

namespace attnres::ops {

namespace cpu_detail {
// Rows per parallel chunk: a row is only H·Dh multiply-adds.
inline constexpr index_t rope_row_grain = 32;

// cos and sin of pos·θ^(−2j/Dh) for positions [0, n), kept per thread and grown on demand: a
// decode step rotates one position per call, and recomputing pow/sin/cos for it every time was
// 6 % of a decode step's instructions. Values are computed exactly as before (double, then T).
template <class T>
struct rope_table {
  double theta = 0;
  index_t Dh = 0, positions = 0;
  std::vector<T> cos_t, sin_t;  // (positions, Dh/2)

  void ensure(double th, index_t dh, index_t needed) {
    if (th == theta && dh == Dh && needed <= positions) return;
    const index_t half = dh / 2;
    const index_t n = (th == theta && dh == Dh) ? std::max(needed, 2 * positions) : needed;
    std::vector<double> inv_freq(static_cast<std::size_t>(half));
    for (index_t j = 0; j < half; ++j)
      inv_freq[j] = std::pow(th, -2.0 * static_cast<double>(j) / static_cast<double>(dh));
    cos_t.resize(static_cast<std::size_t>(n * half));
    sin_t.resize(cos_t.size());
    for (index_t t = 0; t < n; ++t)
      for (index_t j = 0; j < half; ++j) {
        const double angle = static_cast<double>(t) * inv_freq[j];
        cos_t[t * half + j] = static_cast<T>(std::cos(angle));
        sin_t[t * half + j] = static_cast<T>(std::sin(angle));
      }
    theta = th;
    Dh = dh;
    positions = n;
  }
};

template <class T>
rope_table<T>& this_thread_rope_table() {
  static thread_local rope_table<T> table;
  return table;
}

template <class T>
void rope_rotate(matrix_view<T> x /*(B·T, H·Dh)*/, index_t seq_len, index_t H, index_t Dh, index_t pos0, double theta,
                 bool inverse) {
  const index_t half = Dh / 2;
  rope_table<T>& table = this_thread_rope_table<T>();
  table.ensure(theta, Dh, pos0 + seq_len);
  const T* cos_t = table.cos_t.data() + pos0 * half;  // rows pos0 .. pos0 + seq_len − 1
  const T* sin_t = table.sin_t.data() + pos0 * half;
  // The backward rotates by −angle: the same cos and a negated sin (negation is exact).
  const T sign = inverse ? T(-1) : T(1);

  using batch = simd::batch<T>;
  constexpr index_t W = simd::width<T>;
  parallel_chunks(x.rows, rope_row_grain, [&](index_t, index_t begin, index_t end) {
    for (index_t r = begin; r < end; ++r) {
      const T* c = cos_t + (r % seq_len) * half;  // (half)
      const T* s = sin_t + (r % seq_len) * half;  // (half)
      for (index_t h = 0; h < H; ++h) {
        T* lo = x.row(r) + h * Dh;  // (half) channels j
        T* hi = lo + half;          // (half) channels j + half
        index_t j = 0;
        for (; j + W <= half; j += W) {
          const batch a = batch::load_unaligned(lo + j), b = batch::load_unaligned(hi + j);
          const batch cj = batch::load_unaligned(c + j), sj = batch(sign) * batch::load_unaligned(s + j);
          xsimd::fms(a, cj, b * sj).store_unaligned(lo + j);
          xsimd::fma(b, cj, a * sj).store_unaligned(hi + j);
        }
        for (; j < half; ++j) {
          const T a = lo[j], b = hi[j], sj = sign * s[j];
          lo[j] = a * c[j] - b * sj;
          hi[j] = b * c[j] + a * sj;
        }
      }
    }
  });
}
}  // namespace cpu_detail

template <class T>
void rope_forward(backend::cpu, matrix_view<T> x /*(B·T, H·Dh)*/, index_t seq_len, index_t H, index_t pos0,
                  double theta) {
  expects<shape_error>(pos0 >= 0, "rope_forward: the first position ", pos0, " is negative");
  const index_t Dh = detail::rope_check("rope_forward", "x", x.rows, x.cols, seq_len, H, theta);
  cpu_detail::rope_rotate(x, seq_len, H, Dh, pos0, theta, false);
}

template <class T>
void rope_backward(backend::cpu, matrix_view<T> dx /*(B·T, H·Dh)*/, index_t seq_len, index_t H, index_t pos0,
                   double theta) {
  expects<shape_error>(pos0 >= 0, "rope_backward: the first position ", pos0, " is negative");
  const index_t Dh = detail::rope_check("rope_backward", "dx", dx.rows, dx.cols, seq_len, H, theta);
  cpu_detail::rope_rotate(dx, seq_len, H, Dh, pos0, theta, true);
}

}  // namespace attnres::ops
