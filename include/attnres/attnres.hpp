#pragma once
// attnres — transformer stacks whose residual connections are compile-time policies.
// The one include for host code. (CUDA has its own umbrella, <attnres/cuda.hpp>.)

#include <attnres/version.hpp>

#include <attnres/core/backend.hpp>
#include <attnres/core/error.hpp>
#include <attnres/core/memory_space.hpp>
#include <attnres/core/parallel.hpp>
#include <attnres/core/random.hpp>
#include <attnres/core/simd.hpp>
#include <attnres/core/tensor.hpp>

#include <attnres/ops/depth_attention.hpp>

#include <attnres/residual/residual_policy.hpp>
#include <attnres/residual/sum.hpp>
#include <attnres/residual/full_attn_res.hpp>
#include <attnres/residual/block_attn_res.hpp>

#include <attnres/io/safetensors.hpp>

#include <attnres/testing/gradient_check.hpp>
#include <attnres/testing/toy_stack.hpp>
