#pragma once
// Depth attention, reference path: plain loops over tokens, sources and channels, templated on
// the scalar so it runs in double for gradient checks. This is the oracle every fast path is
// tested against; it favours the shape of the equations over speed.
// Notation and derivation: docs/math/depth_attention.md.

#include <attnres/core/backend.hpp>
#include <attnres/ops/depth_attention_types.hpp>

#include <algorithm>
#include <vector>
#include <cmath>
#include <limits>
#include <span>

namespace attnres::ops {

// inv_rms[t] = 1 / sqrt(mean_d v[t,d]² + ε). Returns the first token whose statistic is not
// finite (a NaN or Inf in its row), or -1.
template <class T>
index_t key_norm_stats(backend::reference, no_deduce<const_matrix_view<T>> v /*(M,D)*/, no_deduce<T> eps, T* inv_rms /*(M)*/) {
  index_t bad = -1;
  for (index_t t = 0; t < v.rows; ++t) {
    T ss = 0;
    for (index_t d = 0; d < v.cols; ++d) ss += v(t, d) * v(t, d);
    const T r = std::sqrt(ss / T(v.cols) + eps);
    inv_rms[t] = T(1) / r;
    if (bad < 0 && !std::isfinite(r)) bad = t;
  }
  return bad;
}

// out = a + b (out may be a), then key_norm_stats of out: a block sum and its statistic.
template <class T>
index_t sum_key_norm_stats(backend::reference b, no_deduce<const_matrix_view<T>> x /*(M,D)*/,
                           no_deduce<const_matrix_view<T>> y /*(M,D)*/, no_deduce<matrix_view<T>> out /*(M,D)*/,
                           no_deduce<T> eps, T* inv_rms /*(M)*/) {
  for (index_t t = 0; t < out.rows; ++t)
    for (index_t d = 0; d < out.cols; ++d) out(t, d) = x(t, d) + y(t, d);
  return key_norm_stats(b, const_matrix_view<T>(out), eps, inv_rms);
}

// out[t] = a[t,:] · b[t,:]
template <class T>
void row_dots(backend::reference, no_deduce<const_matrix_view<T>> a /*(M,D)*/, no_deduce<const_matrix_view<T>> b /*(M,D)*/,
              T* out /*(M)*/) {
  for (index_t t = 0; t < a.rows; ++t) {
    T s = 0;
    for (index_t d = 0; d < a.cols; ++d) s += a(t, d) * b(t, d);
    out[t] = s;
  }
}

// One-shot forward of one gather point:
//   s_j = Σ_d w_d g_d v_jd / r_j ;  α = softmax_j(s) ;  h = Σ_j α_j v_j
template <class T>
void depth_attention_forward(backend::reference, std::span<const depth_source<T>> sources, depth_query<T> q,
                             no_deduce<matrix_view<T>> h /*(M,D)*/, no_deduce<matrix_view<T>> alpha /*(n,M)*/) {
  const index_t n = static_cast<index_t>(sources.size());
  const index_t M = h.rows, D = h.cols;
  std::vector<T> s(static_cast<std::size_t>(n));
  for (index_t t = 0; t < M; ++t) {
    T smax = -std::numeric_limits<T>::infinity();
    for (index_t j = 0; j < n; ++j) {
      T dot = 0;
      for (index_t d = 0; d < D; ++d) dot += q.w[d] * q.g[d] * sources[j].value(t, d);
      s[j] = dot * sources[j].inv_rms[t];
      smax = std::max(smax, s[j]);
    }
    T z = 0;  // shift by the max so exp never overflows
    for (index_t j = 0; j < n; ++j) z += std::exp(s[j] - smax);
    for (index_t d = 0; d < D; ++d) h(t, d) = 0;
    for (index_t j = 0; j < n; ++j) {
      const T a = std::exp(s[j] - smax) / z;
      alpha(j, t) = a;
      for (index_t d = 0; d < D; ++d) h(t, d) += a * sources[j].value(t, d);
    }
  }
}

// Phase 1 of the two-phase computation: statistics of S gather points over the same n sources.
//   m = max_j s_j ;  ℓ = Σ_j e^{s_j − m} ;  o = Σ_j e^{s_j − m} v_j
template <class T>
void depth_attention_stats(backend::reference, std::span<const depth_source<T>> sources,
                           no_deduce<std::span<const depth_query<T>>> queries, no_deduce<std::span<const depth_stats<T>>> out) {
  const index_t n = static_cast<index_t>(sources.size());
  for (std::size_t p = 0; p < queries.size(); ++p) {
    const depth_query<T> q = queries[p];
    const depth_stats<T>& st = out[p];
    const index_t M = st.o.rows, D = st.o.cols;
    for (index_t t = 0; t < M; ++t) {
      T smax = -std::numeric_limits<T>::infinity();
      for (index_t j = 0; j < n; ++j) {
        T dot = 0;
        for (index_t d = 0; d < D; ++d) dot += q.w[d] * q.g[d] * sources[j].value(t, d);
        st.logits(j, t) = dot * sources[j].inv_rms[t];
        smax = std::max(smax, st.logits(j, t));
      }
      st.m[t] = smax;
      st.l[t] = 0;
      for (index_t d = 0; d < D; ++d) st.o(t, d) = 0;
      for (index_t j = 0; j < n; ++j) {
        const T e = std::exp(st.logits(j, t) - smax);
        st.l[t] += e;
        for (index_t d = 0; d < D; ++d) st.o(t, d) += e * sources[j].value(t, d);
      }
      if (st.normalized) {  // the same state scaled by 1/ℓ: o = Σ α_j v_j, e^{s_j − m} = α_j
        for (index_t d = 0; d < D; ++d) st.o(t, d) /= st.l[t];
        st.m[t] += std::log(st.l[t]);
        st.l[t] = 1;
      }
    }
  }
}

// Phase 2: merge phase-1 statistics with the partial sum (one more source) by online softmax.
//   s_p = q · P / r_P ;  M = max(m, s_p) ;  Z = e^{m−M} ℓ + e^{s_p−M}
//   h = (e^{m−M} o + e^{s_p−M} P) / Z ;  α_j = e^{s_j−M} / Z  (the partial's α is the last row)
// With no partial (the first sublayer of a block) h = o/ℓ. h may be st.o itself (in place).
template <class T>
void depth_attention_merge(backend::reference, const depth_stats<T>& st, const depth_source<T>* partial,
                           no_deduce<depth_query<T>> q, no_deduce<matrix_view<T>> h /*(M,D)*/, no_deduce<matrix_view<T>> alpha /*(n[+1],M)*/) {
  const index_t M = h.rows, D = h.cols, n = st.logits.rows;
  for (index_t t = 0; t < M; ++t) {
    T mx = st.m[t], sp = 0, ep = 0, eo = 1;
    if (partial) {
      T dot = 0;
      for (index_t d = 0; d < D; ++d) dot += q.w[d] * q.g[d] * partial->value(t, d);
      sp = dot * partial->inv_rms[t];
      mx = std::max(mx, sp);
      eo = std::exp(st.m[t] - mx);
      ep = std::exp(sp - mx);
    }
    const T z = eo * st.l[t] + ep;
    for (index_t d = 0; d < D; ++d)
      h(t, d) = (eo * st.o(t, d) + (partial ? ep * partial->value(t, d) : T(0))) / z;
    for (index_t j = 0; j < n; ++j) alpha(j, t) = std::exp(st.logits(j, t) - mx) / z;
    if (partial) alpha(n, t) = ep / z;
  }
}

// The partial sum's key-norm statistic, then the one-shot forward over [sources…, partial]:
// returns the first token whose statistic is not finite (h and alpha are then not to be used),
// or -1.
template <class T>
index_t depth_attention_forward_normed(backend::reference b, std::span<const depth_source<T>> sources,
                                       no_deduce<const_matrix_view<T>> partial /*(M,D)*/, no_deduce<T> eps,
                                       T* partial_inv_rms /*(M)*/, no_deduce<depth_query<T>> q,
                                       no_deduce<matrix_view<T>> h /*(M,D)*/, no_deduce<matrix_view<T>> alpha /*(n+1,M)*/) {
  if (const index_t bad = key_norm_stats(b, partial, eps, partial_inv_rms); bad >= 0) return bad;
  std::vector<depth_source<T>> all(sources.begin(), sources.end());
  all.push_back({partial, partial_inv_rms});
  depth_attention_forward(b, std::span<const depth_source<T>>(all), q, h, alpha);
  return -1;
}

// The partial sum's key-norm statistic, then the merge with it: returns the first token whose
// statistic is not finite (h and alpha are then not to be used), or -1.
template <class T>
index_t depth_attention_merge_normed(backend::reference b, const depth_stats<T>& st,
                                     no_deduce<const_matrix_view<T>> partial /*(M,D)*/, no_deduce<T> eps,
                                     T* partial_inv_rms /*(M)*/, no_deduce<depth_query<T>> q,
                                     no_deduce<matrix_view<T>> h /*(M,D)*/, no_deduce<matrix_view<T>> alpha /*(n+1,M)*/) {
  if (const index_t bad = key_norm_stats(b, partial, eps, partial_inv_rms); bad >= 0) return bad;
  const depth_source<T> part{partial, partial_inv_rms};
  depth_attention_merge(b, st, &part, q, h, alpha);
  return -1;
}

// Backward of S gather points over the same n sources (S = 1 is the plain one-shot backward).
// With G = ∂ℒ/∂h, u_j = v_j / r_j, q = w ⊙ g:
//   dS_j = α_j (G·v_j − c)          c = G·h
//   ∂ℒ/∂v_j += α_j G + (1/r_j)(p_j − u_j (u_j·p_j)/D),   p_j = dS_j q
//   ∂ℒ/∂w  += Σ_j dS_j (g ⊙ u_j) ;  ∂ℒ/∂g += Σ_j dS_j (w ⊙ u_j)
template <class T>
void depth_attention_backward(backend::reference, std::span<const depth_source<T>> sources,
                              no_deduce<std::span<const depth_query_grad<T>>> points,
                              no_deduce<std::span<const matrix_view<T>>> dsources /*n × (M,D), accumulated*/,
                              grad_write mode = grad_write::accumulate) {
  const index_t n = static_cast<index_t>(sources.size());
  if (mode == grad_write::overwrite)
    for (const matrix_view<T>& d : dsources)
      for (index_t t = 0; t < d.rows; ++t)
        for (index_t k = 0; k < d.cols; ++k) d(t, k) = T(0);
  for (const depth_query_grad<T>& pt : points) {
    const index_t M = pt.dh.rows, D = pt.dh.cols;
    for (index_t t = 0; t < M; ++t) {
      for (index_t j = 0; j < n; ++j) {
        const auto& v = sources[j].value;
        const T rinv = sources[j].inv_rms[t];
        T gv = 0;
        for (index_t d = 0; d < D; ++d) gv += pt.dh(t, d) * v(t, d);
        const T a = pt.alpha(j, t);
        const T ds = a * (gv - pt.c[t]);
        // u·p = dS (u·q): the projection term of the RMSNorm Jacobian
        T uq = 0;
        for (index_t d = 0; d < D; ++d) uq += v(t, d) * rinv * pt.q.w[d] * pt.q.g[d];
        for (index_t d = 0; d < D; ++d) {
          const T u = v(t, d) * rinv;
          const T p = ds * pt.q.w[d] * pt.q.g[d];
          dsources[j](t, d) += a * pt.dh(t, d) + rinv * (p - u * ds * uq / T(D));
          pt.dw[d] += ds * pt.q.g[d] * u;
          pt.dg[d] += ds * pt.q.w[d] * u;
        }
      }
    }
  }
}

}  // namespace attnres::ops
