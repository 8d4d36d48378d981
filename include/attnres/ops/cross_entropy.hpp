#pragma once
// ops/cross_entropy — the language-model loss, fused with its gradient, and a row softmax.
//
//   p[i,:] = softmax(logits[i,:])                     with the max shifted out (never overflows)
//   loss   = (1/M) Σ_i −log p[i, targets[i]]          returned as double
//   dlogits[i,j] = (p[i,j] − [j == targets[i]]) · grad_scale / M
//
// Functions (overloaded on the backend tag; backend::cpu falls back to backend::reference):
//
//   double cross_entropy(B, logits /*(M,V)*/, targets /*(M)*/, dlogits /*(M,V)*/, grad_scale = 1)
//       returns the mean loss over the M rows (0 when M == 0); per-row losses are summed in
//       double. dlogits is overwritten with the gradient of grad_scale·loss, or skipped when
//       dlogits.data == nullptr (evaluation). dlogits may alias logits exactly.
//   softmax_rows(B, x /*(M,V)*/, y /*(M,V)*/)
//       y[i,:] = softmax(x[i,:]), overwritten; y may alias x exactly.
//
// Errors: every target is checked before anything is written; one outside [0, V) throws
// shape_error "cross_entropy: target <v> at row <i> is outside the vocabulary [0, V)". Views of
// the wrong shape throw shape_error.
//
// T is deduced from logits (const or mutable view) — pass `{}` for dlogits to get the loss
// only. Each row is handled by one fused kernel while it sits in cache: max, shifted
// exponentials (stored straight into dlogits), sum, loss, then the in-place rescale into the
// gradient. The cpu path is vectorised over V and parallel over rows; the loss is reduced from
// per-chunk double partial sums in a fixed order (deterministic for a given thread count).

#include <attnres/ops/reference/cross_entropy.hpp>
#include <attnres/ops/cpu/cross_entropy.hpp>
