#pragma once
// attnres — transformer stacks whose residual connections are compile-time policies.
// The one include for host code. (CUDA has its own umbrella, <attnres/cuda.hpp>.)

#include <attnres/version.hpp>

#include <attnres/core/backend.hpp>
#include <attnres/core/bf16.hpp>
#include <attnres/core/blas.hpp>
#include <attnres/core/cpu_isa.hpp>
#include <attnres/core/error.hpp>
#include <attnres/core/memory_space.hpp>
#include <attnres/core/parallel.hpp>
#include <attnres/core/random.hpp>
#include <attnres/core/simd.hpp>
#include <attnres/core/simd_bf16.hpp>
#include <attnres/core/tensor.hpp>

#include <attnres/ops/activation.hpp>
#include <attnres/ops/adamw.hpp>
#include <attnres/ops/attention_decode.hpp>
#include <attnres/ops/causal_attention.hpp>
#include <attnres/ops/cross_entropy.hpp>
#include <attnres/ops/depth_attention.hpp>
#include <attnres/ops/embedding.hpp>
#include <attnres/ops/layer_norm.hpp>
#include <attnres/ops/linear.hpp>
#include <attnres/ops/rms_norm.hpp>
#include <attnres/ops/rope.hpp>

#include <attnres/nn/attention.hpp>
#include <attnres/nn/bf16_weights.hpp>
#include <attnres/nn/layer_norm.hpp>
#include <attnres/nn/mlp.hpp>
#include <attnres/nn/parameter.hpp>
#include <attnres/nn/rms_norm.hpp>

#include <attnres/residual/residual_policy.hpp>
#include <attnres/residual/sum.hpp>
#include <attnres/residual/full_attn_res.hpp>
#include <attnres/residual/block_attn_res.hpp>

#include <attnres/model/config.hpp>
#include <attnres/model/cost.hpp>
#include <attnres/model/dispatch.hpp>
#include <attnres/model/lm.hpp>

#include <attnres/train/adamw.hpp>
#include <attnres/train/data.hpp>
#include <attnres/train/grad_clip.hpp>
#include <attnres/train/metrics_log.hpp>
#include <attnres/train/schedule.hpp>
#include <attnres/train/trainer.hpp>

#include <attnres/generate/decode_loss.hpp>
#include <attnres/generate/generate.hpp>
#include <attnres/generate/sampling.hpp>

#include <attnres/io/atomic_file.hpp>
#include <attnres/io/npy.hpp>
#include <attnres/io/safetensors.hpp>

#include <attnres/testing/gradient_check.hpp>
#include <attnres/testing/toy_stack.hpp>
