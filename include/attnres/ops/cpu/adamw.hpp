#pragma once
// AdamW, cpu path: the update in PyTorch's folded form (step size lr/(1 − β1^t), denominator
// √v/√(1 − β2^t) + ε), vectorised and parallel over chunks of the array.
// Tested equal to the reference in tests/ops/test_dense_ops.cpp.

#include <attnres/core/backend.hpp>
#include <attnres/core/parallel.hpp>
#include <attnres/core/simd.hpp>
#include <attnres/ops/depth_attention_types.hpp>  // no_deduce
#include <attnres/ops/reference/adamw.hpp>        // adamw_step_args, checks

#include <cmath>
#include <vector>

namespace attnres::ops {

namespace adamw_detail {
// Elements per parallel chunk.
inline constexpr index_t grain = index_t(1) << 14;
}  // namespace adamw_detail

template <class T>
void adamw_step(backend::cpu, T* param /*(n)*/, const T* grad /*(n)*/, T* m /*(n)*/, T* v /*(n)*/, index_t n,
                const adamw_step_args& a) {
  adamw_detail::check(a, n);
  using batch = simd::batch<T>;
  constexpr index_t W = simd::width<T>;
  const double t = static_cast<double>(a.step);
  const T decay = T(1 - a.lr * a.weight_decay);
  const T b1 = T(a.beta1), c1 = T(1 - a.beta1), b2 = T(a.beta2), c2 = T(1 - a.beta2), eps = T(a.eps);
  const T step_size = T(a.lr / (1 - std::pow(a.beta1, t)));
  const T bc2_sqrt = T(std::sqrt(1 - std::pow(a.beta2, t)));
  parallel_chunks(n, adamw_detail::grain, [&](index_t, index_t begin, index_t end) {
    const batch vdecay(decay), vb1(b1), vc1(c1), vb2(b2), vc2(c2), veps(eps), vstep(step_size), vbc2(bc2_sqrt);
    index_t i = begin;
    for (; i + W <= end; i += W) {
      const batch g = batch::load_unaligned(grad + i);
      const batch mi = xsimd::fma(vb1, batch::load_unaligned(m + i), vc1 * g);
      const batch vi = xsimd::fma(vb2, batch::load_unaligned(v + i), vc2 * g * g);
      const batch p = batch::load_unaligned(param + i) * vdecay;
      mi.store_unaligned(m + i);
      vi.store_unaligned(v + i);
      (p - vstep * mi / (xsimd::sqrt(vi) / vbc2 + veps)).store_unaligned(param + i);
    }
    for (; i < end; ++i) {
      const T g = grad[i];
      m[i] = b1 * m[i] + c1 * g;
      v[i] = b2 * v[i] + c2 * g * g;
      param[i] = param[i] * decay - step_size * m[i] / (std::sqrt(v[i]) / bc2_sqrt + eps);
    }
  });
}

// Float elements are widened to double lanes as they are loaded, so the sum is a double sum.
template <class T>
double sum_of_squares(backend::cpu, const T* x /*(n)*/, index_t n) {
  using dbatch = xsimd::batch<double>;
  constexpr index_t W = static_cast<index_t>(dbatch::size);
  const index_t chunks = chunk_count(n, adamw_detail::grain);
  std::vector<double> part(static_cast<std::size_t>(chunks), 0.0);
  parallel_chunks(n, adamw_detail::grain, [&](index_t chunk, index_t begin, index_t end) {
    dbatch acc0(0.0), acc1(0.0);
    index_t i = begin;
    for (; i + 2 * W <= end; i += 2 * W) {
      const dbatch a = dbatch::load_unaligned(x + i), b = dbatch::load_unaligned(x + i + W);
      acc0 = xsimd::fma(a, a, acc0);
      acc1 = xsimd::fma(b, b, acc1);
    }
    double s = xsimd::hadd(acc0 + acc1);
    for (; i < end; ++i) s += static_cast<double>(x[i]) * static_cast<double>(x[i]);
    part[static_cast<std::size_t>(chunk)] = s;
  });
  double total = 0;
  for (double p : part) total += p;
  return total;
}

template <class T>
void scale(backend::cpu, T* x /*(n)*/, index_t n, no_deduce<T> s) {
  parallel_chunks(n, adamw_detail::grain, [&](index_t, index_t begin, index_t end) {
    simd::scale_to(s, x + begin, x + begin, end - begin);
  });
}

}  // namespace attnres::ops
