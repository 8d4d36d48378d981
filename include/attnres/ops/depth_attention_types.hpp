#pragma once
// Argument bundles of the depth-attention op (see ops/depth_attention.hpp for the contract).
// Shapes use one vocabulary: M tokens (= B·T), D width, n sources, S gather points.

#include <attnres/core/tensor.hpp>

#include <type_traits>

namespace attnres::ops {

// Marks a parameter whose scalar type is fixed by another argument, so views of mutable data
// convert to const views at the call (template deduction alone does no conversions).
template <class X>
using no_deduce = std::type_identity_t<X>;

// A depth source: its values and its cached key-norm statistic 1/r, r = sqrt(mean_d v² + ε).
// The statistic depends only on the source, so it is computed once when the source is made
// and reused by every gather point that reads it. Space is where the data lives (host for the
// reference and cpu backends, device for CUDA; the pointers live in the same space).
template <class T, class Space = host_space>
struct depth_source {
  const_matrix_view<T, Space> value;  // (M,D)
  const T* inv_rms;            // (M)
};

// A gather point's parameters: pseudo-query w and key-norm gain g. The logit of source j is
// s_j = (w ⊙ g) · v_j / r_j.
template <class T>
struct depth_query {
  const T* w;  // (D)
  const T* g;  // (D)
};

// Phase-1 statistics of one gather point over a set of sources (the paper's ATTNWITHSTATS):
// per token, the max logit m, the sum of shifted exponentials ℓ = Σ_j e^{s_j − m}, the
// unnormalised output o = Σ_j e^{s_j − m} v_j, and the logits themselves (kept so the full α
// can be recovered after the merge).
//
// normalized (set by the caller): write the same softmax state scaled by 1/ℓ instead, i.e.
// m ← m + log ℓ, ℓ ← 1, o ← o/ℓ = Σ_j α_j v_j. The merge gives the same h and α from either
// form, and o is then already the output of a point with no partial source: a policy passes
// that point's h as o, and the merge, given h = o in place, has nothing left to write there.
template <class T, class Space = host_space>
struct depth_stats {
  matrix_view<T, Space> o;       // (M,D)
  T* m;                          // (M)
  T* l;                          // (M)
  matrix_view<T, Space> logits;  // (n,M)
  bool normalized = false;
};

// How the backward writes the source gradients: added to what is there, or in place of it.
// A policy overwrites at the first gather point that reaches every source (the output), so it
// never zeroes the gradient buffers first (a memset of N + 1 or L + 1 (M,D) buffers per step).
enum class grad_write { accumulate, overwrite };

// One gather point in the backward pass, restricted to the sources being differentiated.
template <class T, class Space = host_space>
struct depth_query_grad {
  depth_query<T> q;
  const_matrix_view<T, Space> alpha;  // (n,M)  this point's weights of *these* sources
  const T* c;                         // (M)    c_t = dh_t · h_t, with h the point's full output
  const_matrix_view<T, Space> dh;     // (M,D)  ∂ℒ/∂h
  T* dw;                       // (D)    accumulated
  T* dg;                       // (D)    accumulated
  // Optional (n,M): the logits s_j = q·v_j/r_j of these sources, if the caller kept them from
  // the forward (Phase 1 does). The backward needs s_j; with them it skips a dot product per
  // source and token. Empty: recomputed. A backend may always recompute (reference, cuda).
  const_matrix_view<T, Space> logits{};
};

}  // namespace attnres::ops
