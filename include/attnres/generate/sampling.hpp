#pragma once
// Sampling the next token from one row of logits: temperature, top-k, greedy at temperature 0.
// Computed in double so the same seed picks the same tokens for float and double models.

#include <attnres/core/error.hpp>
#include <attnres/core/random.hpp>
#include <attnres/core/tensor.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

namespace attnres {

struct sampling_config {
  double temperature = 1.0;  // 0 → greedy (argmax)
  index_t top_k = 0;         // 0 → the whole vocabulary
};

template <class T>
std::int32_t sample_token(const T* logits, index_t V, const sampling_config& s, rng& gen) {
  expects<usage_error>(V >= 1, "sample_token: empty vocabulary");
  expects<usage_error>(s.temperature >= 0 && std::isfinite(s.temperature), "sample_token: temperature must be ≥ 0, got ",
                       s.temperature);
  expects<usage_error>(s.top_k >= 0, "sample_token: top-k must be ≥ 0, got ", s.top_k);
  for (index_t i = 0; i < V; ++i)
    expects<numeric_error>(std::isfinite(static_cast<double>(logits[i])), "sample_token: logit ", i, " is not finite");
  if (s.temperature == 0.0) return static_cast<std::int32_t>(std::max_element(logits, logits + V) - logits);

  // candidates: all tokens, or the k largest logits (ties broken by the lower token id)
  std::vector<std::int32_t> cand(static_cast<std::size_t>(V));
  std::iota(cand.begin(), cand.end(), 0);
  if (s.top_k > 0 && s.top_k < V) {
    std::partial_sort(cand.begin(), cand.begin() + s.top_k, cand.end(), [&](std::int32_t a, std::int32_t b) {
      return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    });
    cand.resize(static_cast<std::size_t>(s.top_k));
  }
  double mx = -INFINITY;
  for (auto c : cand) mx = std::max(mx, static_cast<double>(logits[c]));
  std::vector<double> w(cand.size());
  double z = 0;
  for (std::size_t i = 0; i < cand.size(); ++i) z += w[i] = std::exp((logits[cand[i]] - mx) / s.temperature);
  double u = gen.uniform() * z;
  for (std::size_t i = 0; i < cand.size(); ++i) {
    u -= w[i];
    if (u < 0) return cand[i];
  }
  return cand.back();
}

}  // namespace attnres
