#pragma once
// attnres CUDA backend — the one include for device code (compile with nvcc).
//
//   backend::cuda, with backend_traits<backend::cuda>::available() asking for a device at run time
//   cuda::device_tensor<T> (views: matrix_view<T, device_space>), cuda::upload / download / copy
//   ops (backend::cuda overloads): depth attention (one-shot, two-phase stats + merge, backward),
//   RMSNorm, LayerNorm, cross-entropy / softmax, RoPE, causal attention, KV-cache decode,
//   activations, AdamW, embedding, linear (cuBLAS), and add_to (dst += src) for the residual
//   streams. With these, LM<..., backend::cuda> trains and generates through the same API as on
//   the cpu.
// Each kernel is a launch shell around __host__ __device__ row functions (ops/cuda/row/), which the
// CPU test suite checks against the reference ops. See docs/cuda.md.

#if !defined(__CUDACC__)
#if defined(ATTNRES_CUDA)
#error "attnres/cuda.hpp contains CUDA kernels: include it from a .cu file compiled by nvcc (host code uses <attnres/attnres.hpp>)"
#else
#error "attnres/cuda.hpp needs CUDA: compile with nvcc (configure with -DATTNRES_CUDA=ON or `cmake --preset cuda`); host code uses <attnres/attnres.hpp>"
#endif
#endif

// The CUDA overloads come first: the generic code (nn/, residual/, model/, train/) calls ops by
// qualified name (ops::linear_forward(Backend{}, ...)), and a qualified call in a template sees
// only the overloads declared before the template. ops/cuda/launch.hpp refuses to be included
// after that code, so a wrong order is one clear #error instead of "no matching function".
#include <attnres/cuda/cublas.hpp>
#include <attnres/cuda/device_tensor.hpp>
#include <attnres/cuda/runtime.hpp>

#include <attnres/ops/cuda/activation.hpp>
#include <attnres/ops/cuda/add_to.hpp>
#include <attnres/ops/cuda/adamw.hpp>
#include <attnres/ops/cuda/attention_decode.hpp>
#include <attnres/ops/cuda/causal_attention.hpp>
#include <attnres/ops/cuda/cross_entropy.hpp>
#include <attnres/ops/cuda/depth_attention.hpp>
#include <attnres/ops/cuda/embedding.hpp>
#include <attnres/ops/cuda/layer_norm.hpp>
#include <attnres/ops/cuda/linear.hpp>
#include <attnres/ops/cuda/rms_norm.hpp>
#include <attnres/ops/cuda/rope.hpp>

#include <attnres/attnres.hpp>
