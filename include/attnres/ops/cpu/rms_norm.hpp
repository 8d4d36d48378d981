#pragma once
// RMSNorm, cpu path: one fused pass per row, vectorised over D (xsimd) and parallel over rows.
// dg is accumulated per chunk of rows and the chunks are added in order (deterministic).
// Tested equal to the reference in tests/ops/test_dense_ops.cpp.

#include <attnres/core/backend.hpp>
#include <attnres/core/parallel.hpp>
#include <attnres/core/simd.hpp>
#include <attnres/ops/depth_attention_types.hpp>  // no_deduce
#include <attnres/ops/reference/rms_norm.hpp>     // shape checks

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

namespace attnres::ops {

namespace rms_norm_detail {
// Rows per parallel chunk: enough work (≈ 8k elements) to pay for a thread.
inline index_t row_grain(index_t D) { return std::max<index_t>(1, 8192 / std::max<index_t>(1, D)); }

// a = Σ_d dy g x of one row, and with SumSquares ‖x‖² in the same pass (else 0)
template <bool SumSquares, class T>
std::pair<T, T> gain_dot(const T* x, const T* dy, const T* g, index_t D) {
  constexpr index_t W = simd::width<T>;
  using batch = simd::batch<T>;
  batch acc(T(0)), ss(T(0));
  index_t d = 0;
  for (; d + W <= D; d += W) {
    const batch xv = batch::load_unaligned(x + d);
    acc = xsimd::fma(batch::load_unaligned(dy + d) * batch::load_unaligned(g + d), xv, acc);
    if constexpr (SumSquares) ss = xsimd::fma(xv, xv, ss);
  }
  T a = xsimd::hadd(acc), sx = SumSquares ? xsimd::hadd(ss) : T(0);
  for (; d < D; ++d) {
    a += dy[d] * g[d] * x[d];
    if constexpr (SumSquares) sx += x[d] * x[d];
  }
  return {a, sx};
}
}  // namespace rms_norm_detail

template <class T>
void rms_norm_forward(backend::cpu, no_deduce<const_matrix_view<T>> x /*(M,D)*/, const T* g /*(D)*/,
                      no_deduce<T> eps, matrix_view<T> y /*(M,D)*/, no_deduce<T*> inv_rms /*(M) or null*/) {
  rms_norm_detail::check<T>("rms_norm_forward", x, y, "y");
  const index_t D = x.cols;
  constexpr index_t W = simd::width<T>;
  using batch = simd::batch<T>;
  parallel_chunks(x.rows, rms_norm_detail::row_grain(D), [&](index_t, index_t begin, index_t end) {
    for (index_t t = begin; t < end; ++t) {
      const T* xt = x.row(t);
      T* yt = y.row(t);
      const T r = T(1) / std::sqrt(simd::sum_squares(xt, D) / T(D) + eps);
      if (inv_rms) inv_rms[t] = r;
      const batch vr(r);
      index_t d = 0;
      for (; d + W <= D; d += W)
        (batch::load_unaligned(xt + d) * vr * batch::load_unaligned(g + d)).store_unaligned(yt + d);
      for (; d < D; ++d) yt[d] = xt[d] * r * g[d];
    }
  });
}

template <class T>
void rms_norm_backward(backend::cpu, no_deduce<const_matrix_view<T>> x /*(M,D)*/, const T* g /*(D)*/,
                       const T* inv_rms /*(M)*/, no_deduce<const_matrix_view<T>> dy /*(M,D)*/,
                       no_deduce<matrix_view<T>> dx /*(M,D) or null*/, no_deduce<T*> dg /*(D) or null*/,
                       no_deduce<T*> x_dot_dx = nullptr /*(M) or null*/) {
  rms_norm_detail::check<T>("rms_norm_backward", x, dy, "dy");
  if (dx.data) rms_norm_detail::check<T>("rms_norm_backward", x, dx, "dx");
  const index_t M = x.rows, D = x.cols;
  constexpr index_t W = simd::width<T>;
  using batch = simd::batch<T>;
  const index_t grain = rms_norm_detail::row_grain(D);
  const index_t chunks = chunk_count(M, grain);
  std::vector<T> dg_part(dg ? static_cast<std::size_t>(chunks * D) : 0, T(0));  // (chunks, D)
  parallel_chunks(M, grain, [&](index_t chunk, index_t begin, index_t end) {
    T* dgc = dg ? dg_part.data() + chunk * D : nullptr;
    for (index_t t = begin; t < end; ++t) {
      const T* xt = x.row(t);
      const T* dyt = dy.row(t);
      const T r = inv_rms[t];
      if (dx.data || x_dot_dx) {
        // a = Σ_d dy g x, then dx += r g dy − (r³ a / D) x, whose dot with x is
        // r a − r³ a ‖x‖² / D: ‖x‖² is summed in the same pass when that dot is wanted
        const auto [a, sx] = x_dot_dx ? rms_norm_detail::gain_dot<true>(xt, dyt, g, D)
                                      : rms_norm_detail::gain_dot<false>(xt, dyt, g, D);
        if (x_dot_dx) x_dot_dx[t] = r * a - r * r * r * a * sx / T(D);
        if (dx.data) {
          const T cx = -r * r * r * a / T(D);
          T* dxt = dx.row(t);
          const batch vr(r), vcx(cx);
          index_t d = 0;
          for (; d + W <= D; d += W) {
            const batch upd = xsimd::fma(vr * batch::load_unaligned(g + d), batch::load_unaligned(dyt + d),
                                         vcx * batch::load_unaligned(xt + d));
            (batch::load_unaligned(dxt + d) + upd).store_unaligned(dxt + d);
          }
          for (; d < D; ++d) dxt[d] += r * g[d] * dyt[d] + cx * xt[d];
        }
      }
      if (dgc) {
        // dg += r · dy ⊙ x
        const batch vr(r);
        index_t d = 0;
        for (; d + W <= D; d += W)
          xsimd::fma(vr * batch::load_unaligned(dyt + d), batch::load_unaligned(xt + d), batch::load_unaligned(dgc + d))
              .store_unaligned(dgc + d);
        for (; d < D; ++d) dgc[d] += r * dyt[d] * xt[d];
      }
    }
  });
  if (dg)
    for (index_t c = 0; c < chunks; ++c) simd::add(dg_part.data() + c * D, dg, D);
}

}  // namespace attnres::ops
