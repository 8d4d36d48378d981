#pragma once
// LayerNorm has no CUDA kernel yet. backend::cuda has no fallback (DESIGN.md), so calling it is a
// compile-time error that names the op, instead of a wall of failed overload candidates.

#include <attnres/ops/cuda/launch.hpp>

namespace attnres::ops {

template <class... Args>
void layer_norm_forward(backend::cuda, Args&&...) {
  static_assert(cuda_detail::dependent_false<Args...>,
                "layer_norm_forward(backend::cuda, ...): LayerNorm has no CUDA kernel yet and backend::cuda has "
                "no fallback; use RMSNorm on the GPU, or backend::cpu");
}

template <class... Args>
void layer_norm_backward(backend::cuda, Args&&...) {
  static_assert(cuda_detail::dependent_false<Args...>,
                "layer_norm_backward(backend::cuda, ...): LayerNorm has no CUDA kernel yet and backend::cuda has "
                "no fallback; use RMSNorm on the GPU, or backend::cpu");
}

}  // namespace attnres::ops
