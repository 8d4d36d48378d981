#pragma once
// ops/depth_attention — softmax attention over depth for one gather point, per token.
//
// Given n sources v_j (M,D) with cached key-norm statistics 1/r_j (M), a pseudo-query w (D) and
// a key-norm gain g (D):
//
//   r_j = sqrt(mean_d v_j² + ε)        key norm (RMSNorm with gain g), computed once per source
//   s_j = (w ⊙ g) · v_j / r_j          no 1/√D, no temperature
//   α   = softmax_j(s)                 over sources, separately for every token
//   h   = Σ_j α_j v_j                  the gather point's output (M,D)
//
// Derivations of every formula below: docs/math/depth_attention.md.
//
// Functions (each overloaded on the backend tag; backend::cpu falls back to backend::reference
// for anything it does not implement):
//
//   key_norm_stats(B, v, eps, inv_rms) -> index_t
//       writes inv_rms[t] = 1/r; returns the first token whose r is not finite (NaN/Inf in v), or -1.
//   sum_key_norm_stats(B, a, b, out, eps, inv_rms) -> index_t
//       out = a + b (out may be a), then key_norm_stats of out: a block sum and its statistic
//       (the cpu path in one pass).
//   row_dots(B, a, b, out)               out[t] = a_t · b_t (the c = G·h of the backward).
//   depth_attention_forward(B, sources, q, h, alpha)
//       one-shot: overwrites h (M,D) and alpha (n,M).
//   depth_attention_forward_normed(B, sources, partial, eps, partial_inv_rms, q, h, alpha) -> index_t
//       key_norm_stats of the partial sum (into partial_inv_rms), then the one-shot forward over
//       [sources…, partial] (alpha n+1 rows, the partial last); the cpu path takes each token's
//       statistic from the partial's row just before the sweeps that read it again, with no
//       pass of its own. Returns the first bad token as key_norm_stats does (h and alpha are
//       then not to be used).
//   depth_attention_stats(B, sources, queries, stats)            Phase 1 of Algorithm 1
//       for S queries over the same sources, overwrites each stats' o, m, l and logits
//       (scaled by 1/ℓ for a stats with normalized set: o is then Σ α_j v_j).
//   depth_attention_merge(B, stats, partial_or_null, q, h, alpha) Phase 2 of Algorithm 1
//       online-softmax merge of the phase-1 statistics with the partial sum; overwrites h and
//       alpha (n+1 rows with a partial, the partial last; n rows without). h may be stats.o.
//   depth_attention_merge_normed(B, stats, partial, eps, partial_inv_rms, q, h, alpha) -> index_t
//       key_norm_stats of the partial sum (into partial_inv_rms), then the merge with it; the cpu
//       path takes the statistic in the sweep that computes the partial's logit. Returns the
//       first bad token as key_norm_stats does (h and alpha are then not to be used).
//   depth_attention_backward(B, sources, points, dsources, mode = grad_write::accumulate)
//       for S gather points that read the same sources: *accumulates* into dsources[j] (M,D)
//       (or overwrites them, mode = grad_write::overwrite), and into each point's dw, dg (D). Each point supplies its α rows for these sources, its
//       upstream gradient dh (M,D) and c = dh·h (M) computed from its full output h, so that the
//       gradient can be split over subsets of a point's sources (the two-phase backward).
//
// Preconditions (checked by the callers in residual/, which know the names to put in errors):
// all views share M and D; alpha/logits have one row per source; pointers cover M or D values.

#include <attnres/ops/depth_attention_types.hpp>
#include <attnres/ops/reference/depth_attention.hpp>
#include <attnres/ops/cpu/depth_attention.hpp>
