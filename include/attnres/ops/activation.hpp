#pragma once
// ops/activation — element-wise activations of the MLP.
//
//   SwiGLU (Shazeer 2020):  out = silu(gate) ⊙ up,  silu(z) = z σ(z),  σ(z) = 1 / (1 + e^{−z})
//   GELU, exact (PyTorch nn.GELU() default):  y = x Φ(x) = ½ x (1 + erf(x / √2))
//
// Functions (overloaded on the backend tag; backend::cpu falls back to backend::reference):
//
//   swiglu_forward(B, gate /*(M,F)*/, up /*(M,F)*/, out /*(M,F)*/)       out overwritten
//   swiglu_backward(B, gate, up, dout /*(M,F)*/, dgate /*(M,F)*/, dup /*(M,F)*/)
//       dgate = dout ⊙ up ⊙ σ(gate)(1 + gate (1 − σ(gate)))     overwritten (not accumulated:
//       dup   = dout ⊙ silu(gate)                                 gate and up are private
//                                                                 intermediates of the MLP)
//   gelu_forward(B, x /*(M,F)*/, y /*(M,F)*/)                            y overwritten
//   gelu_backward(B, x, dy /*(M,F)*/, dx /*(M,F)*/)
//       dx = dy ⊙ (Φ(x) + x φ(x)),  φ(x) = e^{−x²/2} / √(2π)        overwritten
//
// Requires: all views have the same (M,F) (checked: shape_error). Outputs may alias inputs
// exactly (each element is read before it is written), except that dgate and dup must not
// alias each other.
// The cpu path is vectorised (xsimd exp and erf) and parallel over rows.

#include <attnres/ops/reference/activation.hpp>
#include <attnres/ops/cpu/activation.hpp>
