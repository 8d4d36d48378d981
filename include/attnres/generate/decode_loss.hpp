#pragma once
// The loss of a model computed the way it generates: position by position through the KV cache.
//
//   decode_loss(model, tokens, targets, batch, seq, weights)
//       tokens, targets: (batch, seq) row-major ids. A decode state for batch sequences
//       (start_decode with `weights`), then seq decode steps, teacher-forced: step t feeds
//       tokens[·, t] and scores the logits against targets[·, t]. Returns the mean cross-entropy
//       (nats) over the batch·seq positions, summed in double.
//
// With decode_weights::f32 this is model.loss(tokens, targets, batch, seq) up to float rounding
// (the KV cache reproduces the full forward pass; tested). With decode_weights::bf16 it says
// what decoding with bf16 weights costs in loss (`attnres eval --decode-weights bf16`).
// Throws shape_error for wrong sizes and usage_error for a target outside the vocabulary.

#include <attnres/core/backend.hpp>
#include <attnres/core/error.hpp>
#include <attnres/nn/bf16_weights.hpp>
#include <attnres/ops/reference/cross_entropy.hpp>

#include <cstdint>
#include <span>
#include <vector>

namespace attnres {

template <class Model>
double decode_loss(Model& model, std::span<const std::int32_t> tokens, std::span<const std::int32_t> targets,
                   index_t batch, index_t seq, decode_weights weights) {
  expects<shape_error>(batch >= 1 && seq >= 1, "decode_loss: batch and T must be positive, got ", batch, " and ", seq);
  expects<shape_error>(static_cast<index_t>(tokens.size()) == batch * seq &&
                           static_cast<index_t>(targets.size()) == batch * seq,
                       "decode_loss: ", tokens.size(), " tokens and ", targets.size(), " targets for batch × T = ",
                       batch, " × ", seq);
  const index_t V = model.config().vocab;
  for (std::size_t i = 0; i < targets.size(); ++i)
    expects<usage_error>(targets[i] >= 0 && targets[i] < V, "decode_loss: target ", targets[i], " at position ", i,
                         " is outside the vocabulary [0, ", V, ")");
  using T = typename Model::scalar;
  auto state = model.start_decode(batch, seq, weights);
  std::vector<std::int32_t> step(static_cast<std::size_t>(batch)), step_targets(static_cast<std::size_t>(batch));
  double total = 0;
  for (index_t t = 0; t < seq; ++t) {
    for (index_t b = 0; b < batch; ++b) {
      step[static_cast<std::size_t>(b)] = tokens[static_cast<std::size_t>(b * seq + t)];
      step_targets[static_cast<std::size_t>(b)] = targets[static_cast<std::size_t>(b * seq + t)];
    }
    const auto logits = model.decode_step(state, step);  // (batch, V) on the host
    // the step's mean cross-entropy over the batch (log-sum-exp in double, ops/cross_entropy.hpp)
    total += ops::cross_entropy<T>(backend::reference{}, logits, step_targets.data(), matrix_view<T>{}) *
             static_cast<double>(batch);
  }
  return total / static_cast<double>(batch * seq);
}

}  // namespace attnres
