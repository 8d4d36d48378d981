#pragma once
// ops/adamw — one AdamW step over a flat parameter array (Loshchilov & Hutter 2019), and the
// two reductions that global-norm gradient clipping needs.
//
// adamw_step(B, param /*(n)*/, grad /*(n)*/, m /*(n)*/, v /*(n)*/, n, args), with t = args.step ≥ 1:
//   p ← p − lr·wd·p                                  decoupled weight decay (before the update)
//   m ← β1 m + (1 − β1) g ;  v ← β2 v + (1 − β2) g²
//   m̂ = m / (1 − β1^t) ;  v̂ = v / (1 − β2^t)
//   p ← p − lr · m̂ / (√v̂ + ε)
// the same update as torch.optim.AdamW (non-amsgrad, non-maximize). param, m and v are updated
// in place; m and v start at zero before step 1. Throws usage_error when step < 1.
//
// double sum_of_squares(B, x /*(n)*/, n)   Σ x², accumulated in double (for ‖g‖₂ over all params)
// void   scale(B, x /*(n)*/, n, s)          x ← s·x (apply the clipping factor)
//
// The cpu path is vectorised and parallel over chunks of the array; sum_of_squares adds its
// per-chunk partial sums in a fixed order (deterministic for a given thread count).

#include <attnres/ops/reference/adamw.hpp>
#include <attnres/ops/cpu/adamw.hpp>
