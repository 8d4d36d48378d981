#pragma once
// ops/layer_norm — LayerNorm over the width of every token row (Ba et al. 2016).
//
//   μ_t = mean_d x[t,d] ;  σ_t² = mean_d (x[t,d] − μ_t)² ;  s_t = 1 / sqrt(σ_t² + ε)
//   x̂[t,d] = (x[t,d] − μ_t) s_t ;  y[t,d] = x̂[t,d] g[d] + b[d]
//
// Functions (overloaded on the backend tag; backend::cpu falls back to backend::reference):
//
//   layer_norm_forward(B, x /*(M,D)*/, g /*(D)*/, b /*(D) or null*/, eps, y /*(M,D)*/,
//                      mean /*(M)*/, rstd /*(M)*/)
//       ensures: y is overwritten (b == nullptr means no bias); mean[t] = μ_t and rstd[t] = s_t
//       (each skipped when null). y may alias x exactly.
//   layer_norm_backward(B, x, g, mean, rstd, dy /*(M,D)*/, dx /*(M,D)*/, dg /*(D)*/, db /*(D)*/)
//       mean/rstd are the forward's outputs for this x. With ĝ = dy ⊙ g:
//         dx[t,:] += s_t (ĝ − mean_d ĝ − x̂ · mean_d(ĝ ⊙ x̂))    (skipped when dx.data is null)
//         dg += Σ_t dy ⊙ x̂ ;  db += Σ_t dy                      (each skipped when null)
//
// Requires: the views agree on (M,D) (checked: shape_error); pointers cover D or M values.
// The mean and variance are computed in two passes (no E[x²] − E[x]² cancellation).
// The cpu path is vectorised over D and parallel over rows; dg and db are reduced from
// per-chunk partial sums in a fixed order (deterministic for a given thread count).

#include <attnres/ops/reference/layer_norm.hpp>
#include <attnres/ops/cpu/layer_norm.hpp>
