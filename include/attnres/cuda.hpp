#pragma once
// attnres CUDA backend — the one include for device code (compile with nvcc).
//
//   backend::cuda, with backend_traits<backend::cuda>::available() asking for a device at run time
//   cuda::device_tensor<T> (views: matrix_view<T, device_space>), cuda::upload / download / copy
//   ops (backend::cuda overloads): depth attention (one-shot, two-phase stats + merge, backward),
//   RMSNorm, LayerNorm, cross-entropy / softmax, RoPE, causal attention, KV-cache decode,
//   activations, AdamW, embedding, linear (cuBLAS).
// Each kernel is a launch shell around __host__ __device__ row functions (ops/cuda/row/), which the
// CPU test suite checks against the reference ops. See docs/cuda.md.

#if !defined(__CUDACC__)
#if defined(ATTNRES_CUDA)
#error "attnres/cuda.hpp contains CUDA kernels: include it from a .cu file compiled by nvcc (host code uses <attnres/attnres.hpp>)"
#else
#error "attnres/cuda.hpp needs CUDA: compile with nvcc (configure with -DATTNRES_CUDA=ON or `cmake --preset cuda`); host code uses <attnres/attnres.hpp>"
#endif
#endif

#include <attnres/attnres.hpp>

#include <attnres/cuda/cublas.hpp>
#include <attnres/cuda/device_tensor.hpp>
#include <attnres/cuda/runtime.hpp>

#include <attnres/ops/cuda/activation.hpp>
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
