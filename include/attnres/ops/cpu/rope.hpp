#pragma once
// RoPE, cpu path: cos/sin tables (T × Dh/2) computed once per call in double and rounded to the
// scalar, then every row rotated with xsimd over the channel pairs, rows in parallel (OpenMP).
// Tested equal to the reference on awkward sizes (tests/ops/test_attention_ops.cpp).

#include <attnres/core/backend.hpp>
#include <attnres/core/parallel.hpp>
#include <attnres/core/simd.hpp>
#include <attnres/ops/reference/rope.hpp>

#include <cmath>
#include <vector>

namespace attnres::ops {

namespace cpu_detail {
// Rows per parallel chunk: a row is only H·Dh multiply-adds.
inline constexpr index_t rope_row_grain = 32;

template <class T>
void rope_rotate(matrix_view<T> x /*(B·T, H·Dh)*/, index_t seq_len, index_t H, index_t Dh, index_t pos0, double theta,
                 bool inverse) {
  const index_t half = Dh / 2;
  // (T, half) tables. The backward rotates by −angle, i.e. the same cos and a negated sin.
  std::vector<T> cos_t(static_cast<std::size_t>(seq_len * half)), sin_t(cos_t.size());
  std::vector<double> inv_freq(static_cast<std::size_t>(half));
  for (index_t j = 0; j < half; ++j)
    inv_freq[j] = std::pow(theta, -2.0 * static_cast<double>(j) / static_cast<double>(Dh));
  const double sign = inverse ? -1.0 : 1.0;
  for (index_t t = 0; t < seq_len; ++t)
    for (index_t j = 0; j < half; ++j) {
      const double angle = static_cast<double>(pos0 + t) * inv_freq[j];
      cos_t[t * half + j] = static_cast<T>(std::cos(angle));
      sin_t[t * half + j] = static_cast<T>(sign * std::sin(angle));
    }

  using batch = simd::batch<T>;
  constexpr index_t W = simd::width<T>;
  parallel_chunks(x.rows, rope_row_grain, [&](index_t, index_t begin, index_t end) {
    for (index_t r = begin; r < end; ++r) {
      const T* c = cos_t.data() + (r % seq_len) * half;  // (half)
      const T* s = sin_t.data() + (r % seq_len) * half;  // (half)
      for (index_t h = 0; h < H; ++h) {
        T* lo = x.row(r) + h * Dh;  // (half) channels j
        T* hi = lo + half;          // (half) channels j + half
        index_t j = 0;
        for (; j + W <= half; j += W) {
          const batch a = batch::load_unaligned(lo + j), b = batch::load_unaligned(hi + j);
          const batch cj = batch::load_unaligned(c + j), sj = batch::load_unaligned(s + j);
          xsimd::fms(a, cj, b * sj).store_unaligned(lo + j);
          xsimd::fma(b, cj, a * sj).store_unaligned(hi + j);
        }
        for (; j < half; ++j) {
          const T a = lo[j], b = hi[j];
          lo[j] = a * c[j] - b * s[j];
          hi[j] = b * c[j] + a * s[j];
        }
      }
    }
  });
}
}  // namespace cpu_detail

template <class T>
void rope_forward(backend::cpu, matrix_view<T> x /*(B·T, H·Dh)*/, index_t seq_len, index_t H, index_t pos0,
                  double theta) {
  const index_t Dh = detail::rope_check("rope_forward", "x", x.rows, x.cols, seq_len, H, theta);
  cpu_detail::rope_rotate(x, seq_len, H, Dh, pos0, theta, false);
}

template <class T>
void rope_backward(backend::cpu, matrix_view<T> dx /*(B·T, H·Dh)*/, index_t seq_len, index_t H, index_t pos0,
                   double theta) {
  const index_t Dh = detail::rope_check("rope_backward", "dx", dx.rows, dx.cols, seq_len, H, theta);
  cpu_detail::rope_rotate(dx, seq_len, H, Dh, pos0, theta, true);
}

}  // namespace attnres::ops
