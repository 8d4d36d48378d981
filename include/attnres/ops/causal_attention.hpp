#pragma once
// ops/causal_attention — causal multi-head softmax attention (no biases, no dropout), forward and
// backward, for sequences already projected to queries, keys and values (RoPE already applied).
//
// Layout: q, k, v, out are (B·T, H·Dh) row-major; row r = b·T + t, head h occupies columns
// [h·Dh, (h+1)·Dh). Per sequence b and head h, with Q, K, V the (T, Dh) blocks and s = 1/√Dh:
//
//   S = s · Q Kᵀ                       (T,T), only j ≤ i is used (causal mask)
//   P_ij = exp(S_ij − max_j' S_ij') / Σ_{j' ≤ i} exp(S_ij' − max)   for j ≤ i;  P_ij = 0 for j > i
//   O = P V                            (T,Dh)
//
// Backward, with dO = ∂ℒ/∂O:
//   dV = Pᵀ dO ;  dP = dO Vᵀ ;  dS = P ⊙ (dP − rowsum(dP ⊙ P)) ;  dQ = s · dS K ;  dK = s · dSᵀ Q
//
// Functions (overloaded on the backend tag; backend::cpu falls back to backend::reference):
//
//   causal_attention_forward(B, q, k, v, batch, T, H, out, probs)
//       overwrites out (B·T, H·Dh) and probs (batch, H, T, T), the probabilities P saved for the
//       backward, row-major per (b, h); entries above the diagonal are written as 0.
//   causal_attention_backward(B, q, k, v, probs, dout, batch, T, H, dq, dk, dv)
//       overwrites dq, dk, dv (B·T, H·Dh) (they are not accumulated: each input of attention
//       has exactly one consumer, its projection). probs must come from the forward on q, k, v.
//
// Requires (else attnres::shape_error naming the problem): T ≥ 1, H ≥ 1, batch ≥ 0; every view
// is (batch·T, H·Dh) with the same Dh ≥ 1; probs is non-null and covers batch·H·T·T values.
// Outputs must not alias inputs.

#include <attnres/ops/reference/causal_attention.hpp>
#include <attnres/ops/cpu/causal_attention.hpp>
