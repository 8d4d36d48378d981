#pragma once
// ops/linear — a fully connected layer without bias, in PyTorch's Linear layout.
//
//   y = x Wᵀ            x (M,K) tokens × input width, W (N,K) one row per output, y (M,N)
//
// Functions (overloaded on the backend tag; backend::cpu falls back to backend::reference):
//
//   linear_forward(B, x /*(M,K)*/, W /*(N,K)*/, y /*(M,N)*/)
//       requires: shapes as above (checked: shape_error); y does not alias x or W.
//       ensures:  y is overwritten with x Wᵀ.
//   linear_backward(B, x /*(M,K)*/, W /*(N,K)*/, dy /*(M,N)*/, dx /*(M,K)*/, dW /*(N,K)*/)
//       ensures:  dx += dy W     (skipped when dx.data == nullptr)
//                 dW += dyᵀ x    (skipped when dW.data == nullptr)
//       Both gradients accumulate, so a weight shared by several uses collects all of them.
//
//   linear_forward_shared_input(B, x /*(M,K)*/, std::array<linear_target<T, Space>, J> targets)
//       targets[j] = {W_j /*(N_j,K)*/, y_j /*(M,N_j)*/}, shapes checked as for linear_forward.
//       ensures:  y_j = x W_jᵀ for every j, as J calls of linear_forward would give. Several
//                 layers that read one input (attention's q, k, v; SwiGLU's gate and up) in one
//                 call, so that the cpu path can split all of their rows over the threads at once.
//
// T is deduced from y (forward) and from dx/dW (backward); the other views follow it, so a
// mutable view may be passed where a const one is expected. Pass `{}` for a gradient that is
// not wanted. Any view may have a row stride larger than its width.
//
// The cpu path hands the products to Eigen (which parallelises large GEMMs itself with OpenMP);
// for M ≤ 4 rows (decoding) it runs one matrix-vector product per row instead, parallel over
// blocks of W's rows, which avoids GEMM's packing cost; linear_forward_shared_input does that
// for all of its targets in one parallel region (one fork and join for q, k and v in decoding).

#include <attnres/ops/reference/linear.hpp>
#include <attnres/ops/cpu/linear.hpp>
