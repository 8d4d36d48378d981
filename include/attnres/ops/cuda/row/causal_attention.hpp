#pragma once
// Causal attention, one (query row, head) or one (key row, head) at a time: the arithmetic of the
// CUDA kernels, for host and device. Contract: ops/causal_attention.hpp (and attention_decode.hpp,
// whose one query row is the same computation over the cache).
//
// Pointers address one head: q_i, k_j, v_j are (Dh) rows whose successors are `stride` elements
// apart (stride = H·Dh for the (B·T, H·Dh) layout). P is one head's (T,T) probability matrix.

#include <attnres/ops/cuda/row/hd.hpp>

namespace attnres::ops::row {

// Forward of one query row over n keys (j < n), flash-style: one pass with an online softmax,
//   out = Σ_j e^{s_j − m} v_j / ℓ,  s_j = scale · q·k_j,  m = max_j s_j,  ℓ = Σ_j e^{s_j − m}.
// When p is not null it receives P_j = e^{s_j − m}/ℓ (the logits are parked there during the
// pass). Returns the log-sum-exp m + log ℓ.
template <class T>
ATTNRES_HD T attention_forward_row(const T* q /*(Dh)*/, const T* k, const T* v, index_t stride, index_t n, index_t Dh,
                                   T scale, T* out /*(Dh)*/, T* p /*(n) or null*/) {
  T m = neg_inf<T>(), l = 0;
  for (index_t j = 0; j < n; ++j) {
    const T* kj = k + j * stride;
    const T* vj = v + j * stride;
    const T s = scale * dot(q, kj, Dh);
    if (p) p[j] = s;
    if (j == 0) {
      for (index_t d = 0; d < Dh; ++d) out[d] = vj[d];
      m = s;
      l = 1;
    } else if (s > m) {  // new maximum: rescale the running sum by e^{m − s}
      const T c = exp(m - s);
      for (index_t d = 0; d < Dh; ++d) out[d] = out[d] * c + vj[d];
      l = l * c + 1;
      m = s;
    } else {
      const T e = exp(s - m);
      for (index_t d = 0; d < Dh; ++d) out[d] += e * vj[d];
      l += e;
    }
  }
  const T inv_l = T(1) / l;
  for (index_t d = 0; d < Dh; ++d) out[d] *= inv_l;
  if (p)
    for (index_t j = 0; j < n; ++j) p[j] = exp(p[j] - m) * inv_l;
  return m + log(l);
}

// Backward, query pass for row i (keys j ≤ i, n = i + 1), with P_i the forward's probabilities:
//   dP_ij = dO_i · v_j ;  δ_i = Σ_j P_ij dP_ij ;  dq_i = scale Σ_j P_ij (dP_ij − δ_i) k_j   (overwritten)
// Returns δ_i, which the key pass needs.
template <class T>
ATTNRES_HD T attention_backward_query_row(const T* k, const T* v, index_t stride, index_t n, index_t Dh, T scale,
                                          const T* P /*(n)*/, const T* dout /*(Dh)*/, T* dq /*(Dh)*/) {
  T delta = 0;
  for (index_t j = 0; j < n; ++j) delta += P[j] * dot(dout, v + j * stride, Dh);
  for (index_t d = 0; d < Dh; ++d) dq[d] = 0;
  for (index_t j = 0; j < n; ++j) {
    const T ds = P[j] * (dot(dout, v + j * stride, Dh) - delta) * scale;
    const T* kj = k + j * stride;
    for (index_t d = 0; d < Dh; ++d) dq[d] += ds * kj[d];
  }
  return delta;
}

// Backward, key pass for key row j over the queries i = j .. T−1 that see it:
//   dv_j = Σ_i P_ij dO_i ;  dk_j = scale Σ_i P_ij (dO_i·v_j − δ_i) q_i          (overwritten)
template <class T>
ATTNRES_HD void attention_backward_key_row(const T* q, const T* dout, index_t stride, const T* P /*(T,T)*/,
                                           const T* delta /*(T)*/, index_t seq, index_t j, const T* vj /*(Dh)*/,
                                           index_t Dh, T scale, T* dk /*(Dh)*/, T* dv /*(Dh)*/) {
  for (index_t d = 0; d < Dh; ++d) dk[d] = dv[d] = 0;
  for (index_t i = j; i < seq; ++i) {
    const T pij = P[i * seq + j];
    const T* dOi = dout + i * stride;
    const T* qi = q + i * stride;
    const T ds = pij * (dot(dOi, vj, Dh) - delta[i]) * scale;
    for (index_t d = 0; d < Dh; ++d) {
      dv[d] += pij * dOi[d];
      dk[d] += ds * qi[d];
    }
  }
}

// ---- one GPU thread each: the kernels' index maps, so the CPU tests cover them too ----------

// q, k, v of a (B·T, H·Dh) layout that share one row stride, and the sizes.
template <class T>
struct attention_args {
  const T* q;
  const T* k;
  const T* v;
  index_t stride;
  index_t batch, seq, H, Dh;
  T scale;
};

// Thread i ↦ (sequence b, head h, row r), r the query (or key) row within the sequence.
struct bhr {
  index_t b, h, r;
};
ATTNRES_HD inline bhr split_bhr(index_t i, index_t H, index_t seq) { return {i / (H * seq), (i / seq) % H, i % seq}; }

// Forward, thread i < batch·H·T: query row r of (b, h); writes out (row stride so) and row r of
// this head's P (B,H,T,T), zeros above the diagonal.
template <class T>
ATTNRES_HD void attention_forward_thread(index_t i, const attention_args<T>& a, T* out, index_t so, T* probs) {
  const bhr x = split_bhr(i, a.H, a.seq);
  const index_t base = x.b * a.seq * a.stride + x.h * a.Dh;  // row 0 of this sequence, this head
  T* P = probs + ((x.b * a.H + x.h) * a.seq + x.r) * a.seq;
  for (index_t j = x.r + 1; j < a.seq; ++j) P[j] = 0;
  attention_forward_row(a.q + base + x.r * a.stride, a.k + base, a.v + base, a.stride, x.r + 1, a.Dh, a.scale,
                        out + x.b * a.seq * so + x.h * a.Dh + x.r * so, P);
}

// Backward query pass, thread i: dq of query row r (row stride sq), δ into delta[i] (B,H,T).
template <class T>
ATTNRES_HD void attention_backward_query_thread(index_t i, const attention_args<T>& a, const T* probs, const T* dout,
                                                index_t sd, T* dq, index_t sq, T* delta) {
  const bhr x = split_bhr(i, a.H, a.seq);
  const index_t base = x.b * a.seq * a.stride + x.h * a.Dh;
  const T* P = probs + ((x.b * a.H + x.h) * a.seq + x.r) * a.seq;
  delta[i] = attention_backward_query_row(a.k + base, a.v + base, a.stride, x.r + 1, a.Dh, a.scale, P,
                                          dout + x.b * a.seq * sd + x.h * a.Dh + x.r * sd,
                                          dq + x.b * a.seq * sq + x.h * a.Dh + x.r * sq);
}

// Backward key pass, thread i: dk, dv of key row r (dk and dv share the row stride sg; dout has
// the stride of q, k, v).
template <class T>
ATTNRES_HD void attention_backward_key_thread(index_t i, const attention_args<T>& a, const T* probs, const T* dout,
                                              const T* delta, T* dk, T* dv, index_t sg) {
  const bhr x = split_bhr(i, a.H, a.seq);
  const index_t base = x.b * a.seq * a.stride + x.h * a.Dh;
  const index_t g = x.b * a.seq * sg + x.h * a.Dh + x.r * sg;
  attention_backward_key_row(a.q + base, dout + base, a.stride, probs + (x.b * a.H + x.h) * a.seq * a.seq,
                             delta + (x.b * a.H + x.h) * a.seq, a.seq, x.r, a.v + base + x.r * a.stride, a.Dh, a.scale,
                             dk + g, dv + g);
}

// Decode, thread i < batch·H: sequence b = i / H, head h = i % H over the n cached positions of
// the dense (batch, T_max, H·Dh) caches.
template <class T>
ATTNRES_HD void attention_decode_thread(index_t i, const T* q, index_t sq, const T* k_cache, const T* v_cache, index_t n,
                                        index_t T_max, index_t H, index_t Dh, T scale, T* out, index_t so) {
  const index_t b = i / H, h = i % H, HD = H * Dh;
  const index_t cache = b * T_max * HD + h * Dh;
  attention_forward_row(q + b * sq + h * Dh, k_cache + cache, v_cache + cache, HD, n, Dh, scale, out + b * so + h * Dh,
                        static_cast<T*>(nullptr));
}

}  // namespace attnres::ops::row
