#pragma once
// Autoregressive generation with the KV cache: the prompt is prefilled in one pass, then one
// token at a time is decoded; each step attends over the cached keys/values of every earlier
// position, and the residual policy's depth sources exist only for the token in flight.

#include <attnres/core/error.hpp>
#include <attnres/core/random.hpp>
#include <attnres/generate/sampling.hpp>
#include <attnres/nn/bf16_weights.hpp>

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

namespace attnres {

// Returns the prompt followed by n_new sampled tokens. on_token (optional) sees each new token
// as soon as it is chosen (for streaming output). weights: decode_weights::bf16 decodes with
// bf16 copies of the weight matrices (LM::start_decode; the prompt still runs in float).
template <class Model>
std::vector<std::int32_t> generate(Model& model, std::span<const std::int32_t> prompt, index_t n_new,
                                   const sampling_config& sampling, rng& gen,
                                   const std::function<void(std::int32_t)>& on_token = {},
                                   decode_weights weights = decode_weights::f32) {
  expects<usage_error>(!prompt.empty(), "generate: the prompt must hold at least one token");
  expects<usage_error>(n_new >= 0, "generate: the number of new tokens must be ≥ 0");
  const index_t V = model.config().vocab;
  const index_t T = static_cast<index_t>(prompt.size());
  auto state = model.start_decode(1, T + n_new, weights);
  std::vector<std::int32_t> out(prompt.begin(), prompt.end());
  if (n_new == 0) return out;
  auto logits = model.prefill(state, prompt, T);
  std::int32_t next = sample_token(logits.row(T - 1), V, sampling, gen);
  for (index_t i = 0; i < n_new; ++i) {
    out.push_back(next);
    if (on_token) on_token(next);
    if (i + 1 == n_new) break;
    logits = model.decode_step(state, std::span<const std::int32_t>(&next, 1));
    next = sample_token(logits.row(0), V, sampling, gen);
  }
  return out;
}

}  // namespace attnres
