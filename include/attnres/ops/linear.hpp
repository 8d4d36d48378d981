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
// T is deduced from y (forward) and from dx/dW (backward); the other views follow it, so a
// mutable view may be passed where a const one is expected. Pass `{}` for a gradient that is
// not wanted. Any view may have a row stride larger than its width.
//
// The cpu path hands the products to Eigen (which parallelises large GEMMs itself with OpenMP);
// for M ≤ 4 rows (decoding) it runs one matrix-vector product per row instead, parallel over
// blocks of W's rows, which avoids GEMM's packing cost.

#include <attnres/ops/reference/linear.hpp>
#include <attnres/ops/cpu/linear.hpp>
