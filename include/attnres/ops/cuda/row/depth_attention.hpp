#pragma once
// Depth attention, one token at a time: the arithmetic of the CUDA kernels (one thread per
// token, or per channel for the parameter gradients), written for host and device alike.
// Contract: ops/depth_attention.hpp; derivations: docs/math/depth_attention.md (§1, §3.4, §5, §6).
// A view here is a base pointer and a row stride, so the same code reads host or device memory.

#include <attnres/ops/cuda/row/hd.hpp>

namespace attnres::ops::row {

// A depth source: values (M,D) with row stride, and the cached key-norm statistic 1/r (M).
template <class T>
struct source_rows {
  const T* value;
  index_t stride;
  const T* inv_rms;
  ATTNRES_HD const T* row(index_t t) const { return value + t * stride; }
};

// The gradient of a source (M,D), accumulated.
template <class T>
struct dsource_rows {
  T* value;
  index_t stride;
  ATTNRES_HD T* row(index_t t) const { return value + t * stride; }
};

// One gather point in the backward (ops::depth_query_grad), plus a scratch row per source for
// dS (n,M), which the per-channel parameter pass reads back.
template <class T>
struct point_grad_rows {
  const T* w;             // (D)
  const T* g;             // (D)
  const T* alpha;         // (n,M) row stride alpha_stride
  index_t alpha_stride;
  const T* c;             // (M)   c_t = dh_t · h_t
  const T* dh;            // (M,D) row stride dh_stride
  index_t dh_stride;
  T* dS;                  // (n,M) row stride dS_stride: written by the token pass
  index_t dS_stride;
  T* dw;                  // (D) accumulated by the channel pass
  T* dg;                  // (D)
};

// 1/r,  r = sqrt(mean_d v[d]² + ε)
template <class T>
ATTNRES_HD T key_norm_inv_rms(const T* v /*(D)*/, index_t D, T eps) {
  return T(1) / sqrt(dot(v, v, D) / T(D) + eps);
}

// s = (w ⊙ g) · v / r — the gain folded into the query (§1)
template <class T>
ATTNRES_HD T depth_logit(const T* w, const T* g, const T* v /*(D)*/, T inv_rms, index_t D) {
  T s = 0;
  for (index_t d = 0; d < D; ++d) s += w[d] * g[d] * v[d];
  return s * inv_rms;
}

// One-shot forward of token t, one pass over the sources with an online softmax: the running
// output is rescaled when a larger logit appears, so each source row is read once.
//   h = Σ_j e^{s_j − m} v_j / Σ_j e^{s_j − m},   α_j = e^{s_j − m} / Z    (written to alpha(j,t))
template <class T>
ATTNRES_HD void depth_forward_token(const source_rows<T>* src, index_t n, index_t t, const T* w, const T* g,
                                    index_t D, T* h /*(D)*/, T* alpha /*(n,M)*/, index_t alpha_stride) {
  T m = neg_inf<T>(), z = 0;
  for (index_t j = 0; j < n; ++j) {
    const T* v = src[j].row(t);
    const T s = depth_logit(w, g, v, src[j].inv_rms[t], D);
    alpha[j * alpha_stride + t] = s;  // the logit, normalised below
    if (j == 0) {
      for (index_t d = 0; d < D; ++d) h[d] = v[d];
      m = s;
      z = 1;
    } else if (s > m) {  // new maximum: rescale what was summed so far by e^{m − s}
      const T scale = exp(m - s);
      for (index_t d = 0; d < D; ++d) h[d] = h[d] * scale + v[d];
      z = z * scale + 1;
      m = s;
    } else {
      const T e = exp(s - m);
      for (index_t d = 0; d < D; ++d) h[d] += e * v[d];
      z += e;
    }
  }
  const T inv_z = T(1) / z;
  for (index_t d = 0; d < D; ++d) h[d] *= inv_z;
  for (index_t j = 0; j < n; ++j) alpha[j * alpha_stride + t] = exp(alpha[j * alpha_stride + t] - m) * inv_z;
}

// Phase 1 (Algorithm 1) for one query and token t over the completed sources:
//   m = max_j s_j ;  ℓ = Σ_j e^{s_j − m} ;  o = Σ_j e^{s_j − m} v_j ;  logits(j,t) = s_j
template <class T>
ATTNRES_HD void depth_stats_token(const source_rows<T>* src, index_t n, index_t t, const T* w, const T* g, index_t D,
                                  T* o /*(D)*/, T* m_out, T* l_out, T* logits /*(n,M)*/, index_t logits_stride,
                                  bool normalized = false) {
  T m = neg_inf<T>(), l = 0;
  for (index_t j = 0; j < n; ++j) {
    const T* v = src[j].row(t);
    const T s = depth_logit(w, g, v, src[j].inv_rms[t], D);
    logits[j * logits_stride + t] = s;
    if (j == 0) {
      for (index_t d = 0; d < D; ++d) o[d] = v[d];
      m = s;
      l = 1;
    } else if (s > m) {
      const T scale = exp(m - s);
      for (index_t d = 0; d < D; ++d) o[d] = o[d] * scale + v[d];
      l = l * scale + 1;
      m = s;
    } else {
      const T e = exp(s - m);
      for (index_t d = 0; d < D; ++d) o[d] += e * v[d];
      l += e;
    }
  }
  if (normalized) {  // the same state scaled by 1/ℓ (depth_stats::normalized)
    for (index_t d = 0; d < D; ++d) o[d] /= l;
    m += log(l);
    l = 1;
  }
  *m_out = m;
  *l_out = l;
}

// Phase 2 for token t: merge the phase-1 statistics (o, m, ℓ, logits of n sources) with the
// partial sum P (null at a block's first sublayer) by online softmax (§5):
//   s_p = q · P / r_P ;  M = max(m, s_p) ;  Z = e^{m−M} ℓ + e^{s_p−M}
//   h = (e^{m−M} o + e^{s_p−M} P) / Z ;  α_j = e^{s_j−M} / Z,  α_p = e^{s_p−M} / Z (row n)
template <class T>
ATTNRES_HD void depth_merge_token(const T* o /*(D)*/, T m, T l, const T* logits /*(n,M)*/, index_t logits_stride,
                                  index_t n, const source_rows<T>* partial, index_t t, const T* w, const T* g,
                                  index_t D, T* h /*(D)*/, T* alpha /*(n[+1],M)*/, index_t alpha_stride) {
  T mx = m, eo = 1, ep = 0;
  const T* P = nullptr;
  if (partial) {
    P = partial->row(t);
    const T sp = depth_logit(w, g, P, partial->inv_rms[t], D);
    mx = max(m, sp);
    eo = exp(m - mx);
    ep = exp(sp - mx);
  }
  const T inv_z = T(1) / (eo * l + ep);
  for (index_t d = 0; d < D; ++d) h[d] = (eo * o[d] + (P ? ep * P[d] : T(0))) * inv_z;
  for (index_t j = 0; j < n; ++j) alpha[j * alpha_stride + t] = exp(logits[j * logits_stride + t] - mx) * inv_z;
  if (partial) alpha[n * alpha_stride + t] = ep * inv_z;
}

// Backward, token pass, for S gather points over the same n sources (§6, batched): reads each
// source row once for all points. With G_p = ∂ℒ/∂h_p, q_p = w_p ⊙ g_p, u_j = v_j / r_j:
//   dS_pj = α_pj (G_p·v_j − c_p)                                   written to points[p].dS(j,t)
//   Q_j   = Σ_p dS_pj q_p ,   u_j·Q_j = Σ_p dS_pj s_pj              (the key-norm VJP is linear)
//   dv_j += Σ_p α_pj G_p + (1/r_j)(Q_j − u_j (u_j·Q_j)/D)           accumulated into dsrc[j]
// The parameter gradients, which sum over tokens, are left to depth_backward_channel.
template <class T>
ATTNRES_HD void depth_backward_token(const source_rows<T>* src, index_t n, const point_grad_rows<T>* points,
                                     index_t S, index_t t, index_t D, const dsource_rows<T>* dsrc) {
  for (index_t j = 0; j < n; ++j) {
    const T* v = src[j].row(t);
    const T rinv = src[j].inv_rms[t];
    T uQ = 0;
    for (index_t p = 0; p < S; ++p) {
      const point_grad_rows<T>& pt = points[p];
      const T* G = pt.dh + t * pt.dh_stride;
      const T a = pt.alpha[j * pt.alpha_stride + t];
      const T ds = a * (dot(G, v, D) - pt.c[t]);
      pt.dS[j * pt.dS_stride + t] = ds;
      uQ += ds * depth_logit(pt.w, pt.g, v, rinv, D);  // u_j · q_p = s_pj
    }
    T* dv = dsrc[j].row(t);
    const T k = rinv * rinv * uQ / T(D);  // (1/r) · u[d] · (u·Q)/D = v[d] · r⁻² (u·Q)/D
    for (index_t d = 0; d < D; ++d) {
      T acc = 0;
      for (index_t p = 0; p < S; ++p) {
        const point_grad_rows<T>& pt = points[p];
        acc += pt.alpha[j * pt.alpha_stride + t] * pt.dh[t * pt.dh_stride + d] +
               rinv * pt.dS[j * pt.dS_stride + t] * pt.w[d] * pt.g[d];
      }
      dv[d] += acc - k * v[d];
    }
  }
}

// Backward, channel pass: the query and gain gradients of point p at channel d, summed over
// tokens in order (deterministic, no atomics):
//   dw[d] += Σ_t Σ_j dS_pj g[d] u_j[d] ;  dg[d] += Σ_t Σ_j dS_pj w[d] u_j[d]
template <class T>
ATTNRES_HD void depth_backward_channel(const source_rows<T>* src, index_t n, const point_grad_rows<T>& pt,
                                       index_t M, index_t d) {
  T acc = 0;  // Σ_t Σ_j dS_pj u_j[d]
  for (index_t t = 0; t < M; ++t)
    for (index_t j = 0; j < n; ++j) acc += pt.dS[j * pt.dS_stride + t] * src[j].row(t)[d] * src[j].inv_rms[t];
  pt.dw[d] += acc * pt.g[d];
  pt.dg[d] += acc * pt.w[d];
}

}  // namespace attnres::ops::row
