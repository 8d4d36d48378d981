#pragma once
// ops/rms_norm — RMSNorm over the width of every token row (Zhang & Sennrich 2019).
//
//   r_t = 1 / sqrt(mean_d x[t,d]² + ε)        one statistic per row, saved for backward
//   y[t,d] = x[t,d] · r_t · g[d]              g the learned gain
//
// Functions (overloaded on the backend tag; backend::cpu falls back to backend::reference):
//
//   rms_norm_forward(B, x /*(M,D)*/, g /*(D)*/, eps, y /*(M,D)*/, inv_rms /*(M)*/)
//       ensures: y is overwritten; inv_rms[t] = r_t (skipped when inv_rms is null, e.g. at
//       inference). y may alias x exactly (in-place normalisation).
//   rms_norm_backward(B, x /*(M,D)*/, g /*(D)*/, inv_rms /*(M)*/, dy /*(M,D)*/, dx /*(M,D)*/, dg /*(D)*/,
//                     x_dot_dx /*(M), optional*/)
//       inv_rms is the forward's output for this x. With a_t = Σ_d dy[t,d] g[d] x[t,d]:
//         dx[t,d] += r_t g[d] dy[t,d] − (r_t³ a_t / D) x[t,d]     (skipped when dx.data is null)
//         dg[d]   += Σ_t dy[t,d] x[t,d] r_t                        (skipped when dg is null)
//         x_dot_dx[t] = Σ_d x[t,d] · (what this call adds to dx[t,d])
//                     = r_t a_t − r_t³ a_t ‖x_t‖² / D              (skipped when null)
//       The last is ≈ ε r_t³ a_t: the norm ignores the scale of x (up to ε), so its gradient is
//       almost orthogonal to x. Depth attention's backward needs c_t = dh_t · h_t for a gather
//       output h that feeds this norm; LM takes it from here instead of a pass over dh and h.
//
// Requires: the views agree on (M,D) (checked: shape_error); pointers cover D or M values.
// T is deduced from g (and y / inv_rms); eps and the other views follow it.
// The cpu path is vectorised over D and parallel over rows; dg is reduced from per-chunk
// partial sums in a fixed order, so results are deterministic for a given thread count.

#include <attnres/ops/reference/rms_norm.hpp>
#include <attnres/ops/cpu/rms_norm.hpp>
