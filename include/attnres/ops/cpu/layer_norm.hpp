#pragma once
// LayerNorm, cpu path: vectorised over D (xsimd), parallel over rows; dg and db are
// accumulated per chunk of rows and the chunks added in order (deterministic).
// Tested equal to the reference in tests/ops/test_dense_ops.cpp.

#include <attnres/core/backend.hpp>
#include <attnres/core/parallel.hpp>
#include <attnres/core/simd.hpp>
#include <attnres/ops/depth_attention_types.hpp>  // no_deduce
#include <attnres/ops/reference/layer_norm.hpp>   // shape checks

#include <algorithm>
#include <cmath>
#include <vector>

namespace attnres::ops {

namespace layer_norm_detail {
inline index_t row_grain(index_t D) { return std::max<index_t>(1, 8192 / std::max<index_t>(1, D)); }

// Σ_d x[d]
template <class T>
T sum(const T* x, index_t n) {
  constexpr index_t W = simd::width<T>;
  simd::batch<T> acc(T(0));
  index_t d = 0;
  for (; d + W <= n; d += W) acc += simd::batch<T>::load_unaligned(x + d);
  T s = xsimd::hadd(acc);
  for (; d < n; ++d) s += x[d];
  return s;
}

// Σ_d (x[d] − mu)²
template <class T>
T sum_sq_dev(const T* x, T mu, index_t n) {
  constexpr index_t W = simd::width<T>;
  const simd::batch<T> vmu(mu);
  simd::batch<T> acc(T(0));
  index_t d = 0;
  for (; d + W <= n; d += W) {
    const auto c = simd::batch<T>::load_unaligned(x + d) - vmu;
    acc = xsimd::fma(c, c, acc);
  }
  T s = xsimd::hadd(acc);
  for (; d < n; ++d) s += (x[d] - mu) * (x[d] - mu);
  return s;
}
}  // namespace layer_norm_detail

template <class T>
void layer_norm_forward(backend::cpu, no_deduce<const_matrix_view<T>> x /*(M,D)*/, const T* g /*(D)*/,
                        no_deduce<const T*> b /*(D) or null*/, no_deduce<T> eps, matrix_view<T> y /*(M,D)*/,
                        no_deduce<T*> mean /*(M) or null*/, no_deduce<T*> rstd /*(M) or null*/) {
  using namespace layer_norm_detail;
  check<T>("layer_norm_forward", x, y, "y");
  const index_t D = x.cols;
  constexpr index_t W = simd::width<T>;
  using batch = simd::batch<T>;
  parallel_chunks(x.rows, row_grain(D), [&](index_t, index_t begin, index_t end) {
    for (index_t t = begin; t < end; ++t) {
      const T* xt = x.row(t);
      T* yt = y.row(t);
      const T mu = sum(xt, D) / T(D);
      const T s = T(1) / std::sqrt(sum_sq_dev(xt, mu, D) / T(D) + eps);
      if (mean) mean[t] = mu;
      if (rstd) rstd[t] = s;
      const batch vmu(mu), vs(s);
      index_t d = 0;
      for (; d + W <= D; d += W) {
        const batch xh = (batch::load_unaligned(xt + d) - vmu) * vs;
        const batch bias = b ? batch::load_unaligned(b + d) : batch(T(0));
        xsimd::fma(xh, batch::load_unaligned(g + d), bias).store_unaligned(yt + d);
      }
      for (; d < D; ++d) yt[d] = (xt[d] - mu) * s * g[d] + (b ? b[d] : T(0));
    }
  });
}

template <class T>
void layer_norm_backward(backend::cpu, no_deduce<const_matrix_view<T>> x /*(M,D)*/, const T* g /*(D)*/,
                         const T* mean /*(M)*/, const T* rstd /*(M)*/, no_deduce<const_matrix_view<T>> dy /*(M,D)*/,
                         no_deduce<matrix_view<T>> dx /*(M,D) or null*/, no_deduce<T*> dg /*(D) or null*/,
                         no_deduce<T*> db /*(D) or null*/) {
  using namespace layer_norm_detail;
  check<T>("layer_norm_backward", x, dy, "dy");
  if (dx.data) check<T>("layer_norm_backward", x, dx, "dx");
  const index_t M = x.rows, D = x.cols;
  constexpr index_t W = simd::width<T>;
  using batch = simd::batch<T>;
  const index_t grain = row_grain(D);
  const index_t chunks = chunk_count(M, grain);
  // per-chunk partial sums: (chunks, D) each
  std::vector<T> dg_part(dg ? static_cast<std::size_t>(chunks * D) : 0, T(0));
  std::vector<T> db_part(db ? static_cast<std::size_t>(chunks * D) : 0, T(0));
  parallel_chunks(M, grain, [&](index_t chunk, index_t begin, index_t end) {
    T* dgc = dg ? dg_part.data() + chunk * D : nullptr;
    T* dbc = db ? db_part.data() + chunk * D : nullptr;
    for (index_t t = begin; t < end; ++t) {
      const T* xt = x.row(t);
      const T* dyt = dy.row(t);
      const batch vmu(mean[t]), vs(rstd[t]);
      const T mu = mean[t], s = rstd[t];
      if (dx.data) {
        // m1 = mean_d ĝ, m2 = mean_d ĝ x̂
        batch a1(T(0)), a2(T(0));
        index_t d = 0;
        for (; d + W <= D; d += W) {
          const batch gh = batch::load_unaligned(dyt + d) * batch::load_unaligned(g + d);
          a1 += gh;
          a2 = xsimd::fma(gh, (batch::load_unaligned(xt + d) - vmu) * vs, a2);
        }
        T m1 = xsimd::hadd(a1), m2 = xsimd::hadd(a2);
        for (; d < D; ++d) {
          m1 += dyt[d] * g[d];
          m2 += dyt[d] * g[d] * ((xt[d] - mu) * s);
        }
        m1 /= T(D);
        m2 /= T(D);
        T* dxt = dx.row(t);
        const batch vm1(m1), vm2(m2);
        d = 0;
        for (; d + W <= D; d += W) {
          const batch gh = batch::load_unaligned(dyt + d) * batch::load_unaligned(g + d);
          const batch xh = (batch::load_unaligned(xt + d) - vmu) * vs;
          const batch upd = vs * (gh - vm1 - xh * vm2);
          (batch::load_unaligned(dxt + d) + upd).store_unaligned(dxt + d);
        }
        for (; d < D; ++d) dxt[d] += s * (dyt[d] * g[d] - m1 - (xt[d] - mu) * s * m2);
      }
      if (dgc) {
        index_t d = 0;
        for (; d + W <= D; d += W)
          xsimd::fma(batch::load_unaligned(dyt + d), (batch::load_unaligned(xt + d) - vmu) * vs,
                     batch::load_unaligned(dgc + d))
              .store_unaligned(dgc + d);
        for (; d < D; ++d) dgc[d] += dyt[d] * ((xt[d] - mu) * s);
      }
      if (dbc) simd::add(dyt, dbc, D);
    }
  });
  for (index_t c = 0; c < chunks; ++c) {
    if (dg) simd::add(dg_part.data() + c * D, dg, D);
    if (db) simd::add(db_part.data() + c * D, db, D);
  }
}

}  // namespace attnres::ops
