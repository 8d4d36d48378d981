#pragma once
// ops/rope — rotary position embedding, applied in place to the queries and keys of every head.
//
// x is (B·T, H·Dh) row-major: row r = b·T + t holds token t of sequence b, and head h occupies
// columns [h·Dh, (h+1)·Dh). Token t sits at position pos = pos0 + t (pos0 > 0 when decoding
// after a prefix). With half = Dh/2, the "rotate half" (non-interleaved) convention of HF
// Llama / GPT-NeoX pairs channel j with channel j + half:
//
//   inv_freq_j = θ^(−2j/Dh),  angle_j = pos · inv_freq_j            j = 0 .. half−1
//   out[j]        = x[j]·cos(angle_j) − x[j+half]·sin(angle_j)
//   out[j+half]   = x[j+half]·cos(angle_j) + x[j]·sin(angle_j)
//
// Every pair is rotated by a fixed angle, so the Jacobian is a rotation R and the backward is
// its transpose: the rotation by −angle.
//
// Functions (overloaded on the backend tag; backend::cpu falls back to backend::reference):
//
//   rope_forward(B, x /*(B·T, H·Dh)*/, T, H, pos0, theta)    x ← R x, in place.
//   rope_backward(B, dx /*(B·T, H·Dh)*/, T, H, pos0, theta)  dx ← Rᵀ dx, in place (∂ℒ/∂out → ∂ℒ/∂x).
//
// Requires (else attnres::shape_error naming the problem): T ≥ 1, H ≥ 1, x.cols = H·Dh with
// Dh ≥ 2 even, x.rows a multiple of T. θ > 0 and finite (else attnres::config_error).
// Angles, cosines and sines are computed in double whatever the scalar type, so float results
// differ from a float64 computation only by the final rounding.

#include <attnres/ops/reference/rope.hpp>
#include <attnres/ops/cpu/rope.hpp>
