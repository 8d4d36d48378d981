// Decoding with bf16 weights (LM::start_decode with decode_weights::bf16, nn/bf16_weights.hpp):
// the same computation as float decoding with the weight matrices rounded to bf16, close to
// float decoding, a snapshot of the weights at start_decode, prefill still in float, and clear
// errors where it cannot run or a weight has no finite bf16 value.

#include "test_util.hpp"

#include <attnres/generate/decode_loss.hpp>
#include <attnres/generate/generate.hpp>
#include <attnres/model/lm.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

using namespace attnres_test;
using attnres::bf16;
using attnres::BlockAttnRes;
using attnres::decode_weights;
using attnres::FullAttnRes;
using attnres::Sum;

namespace {

// expr throws E, and the message satisfies the matcher
#define CHECK_THROWS_CONTAINING(expr, E, matcher) \
  do {                                            \
    CHECK_THROWS_AS(expr, E);                     \
    CHECK_THROWS_WITH(expr, matcher);             \
  } while (0)

// The weight matrices decode_step multiplies with (attention, MLP, output head), not the
// embedding lookup, the norms or the residual policy's parameters.
bool is_decode_matrix(const std::string& name) {
  return name.find(".attn.w") != std::string::npos || name.find(".mlp.w") != std::string::npos ||
         name == "lm_head.weight";
}

// `steps` decode steps from position 0 of B sequences; the logits of every step, one after another
template <class Model>
std::vector<float> decode_from_start(Model& m, index_t B, index_t steps, decode_weights w) {
  auto state = m.start_decode(B, steps, w);
  std::vector<float> out;
  const index_t V = m.config().vocab;
  for (index_t t = 0; t < steps; ++t) {
    std::vector<std::int32_t> tok;
    for (index_t b = 0; b < B; ++b) tok.push_back(static_cast<std::int32_t>((t * 5 + b * 3 + 1) % V));
    const auto lg = m.decode_step(state, tok);
    for (index_t b = 0; b < B; ++b) out.insert(out.end(), lg.row(b), lg.row(b) + V);
  }
  return out;
}

template <class Model>
void bf16_equals_rounded_float(const attnres::model_config& cfg) {
  Model m(cfg), rounded(cfg);
  randomize(m, 17);
  auto from = m.parameters();
  auto to = rounded.parameters();
  index_t matrices = 0;
  for (std::size_t i = 0; i < from.size(); ++i) {
    const bool round = is_decode_matrix(from[i].name);
    matrices += round;
    for (index_t e = 0; e < from[i].size(); ++e)
      to[i].value[e] = round ? static_cast<float>(bf16(from[i].value[e])) : from[i].value[e];
  }
  constexpr index_t mlp_matrices = requires(typename Model::mlp_t::Params p) { p.w_gate_up; } ? 3 : 2;
  REQUIRE(matrices == (4 + mlp_matrices) * cfg.n_layers + (cfg.tie_embeddings ? 0 : 1));
  const index_t B = GENERATE(index_t(1), index_t(5));  // 5: past the spinning team's batch of ≤ 4
  const int threads = GENERATE(1, 2);
  CAPTURE(B, threads);
  thread_count_scope scope(threads);
  const auto with_bf16 = decode_from_start(m, B, 6, decode_weights::bf16);
  const auto float_rounded = decode_from_start(rounded, B, 6, decode_weights::f32);
  const auto float_own = decode_from_start(m, B, 6, decode_weights::f32);
  // the same numbers multiplied: only float summation order differs (logits of size ~ 10)
  REQUIRE_CLOSE(with_bf16.data(), float_rounded.data(), static_cast<index_t>(with_bf16.size()), 1e-4, 1e-4);
  // and the rounding does change them: the bf16 path really reads its own copies
  index_t differing = 0;
  for (std::size_t i = 0; i < with_bf16.size(); ++i) differing += with_bf16[i] != float_own[i];
  CHECK(differing > static_cast<index_t>(with_bf16.size()) / 2);
}

}  // namespace

TEST_CASE("decoding with bf16 weights equals float decoding with the weight matrices rounded to bf16",
          "[model][generate][bf16]") {
  const attnres::model_config cfg{.vocab = 37, .d_model = 32, .n_heads = 4, .n_layers = 2, .d_ff = 40};
  SECTION("Sum, SwiGLU") { bf16_equals_rounded_float<attnres::LM<Sum>>(cfg); }
  SECTION("Block<2>, SwiGLU") { bf16_equals_rounded_float<attnres::LM<BlockAttnRes<2>>>(cfg); }
  SECTION("Full, GELU, LayerNorm") {
    bf16_equals_rounded_float<attnres::LM<FullAttnRes, attnres::LayerNorm, attnres::GELU>>(cfg);
  }
  SECTION("Block<4>, GELU, reference backend") {
    bf16_equals_rounded_float<attnres::LM<BlockAttnRes<4>, attnres::RMSNorm, attnres::GELU, attnres::backend::reference>>(cfg);
  }
}

TEST_CASE("decoding with bf16 weights stays close to float decoding; prefill stays float", "[model][generate][bf16]") {
  // tied embeddings: the head's bf16 copy is the embedding table's, the lookup stays float
  const attnres::model_config cfg{.vocab = 61, .d_model = 64, .n_heads = 4, .n_layers = 3, .d_ff = 96,
                                  .tie_embeddings = true};
  attnres::LM<BlockAttnRes<3>> m(cfg);
  m.init_weights(5);
  const std::vector<std::int32_t> prompt{3, 1, 4, 1, 5, 9, 2, 6};
  const index_t P = static_cast<index_t>(prompt.size()), steps = 8, V = cfg.vocab;
  auto s_float = m.start_decode(1, P + steps);
  auto s_bf16 = m.start_decode(1, P + steps, decode_weights::bf16);
  CHECK(s_float.bf16 == nullptr);
  REQUIRE(s_bf16.bf16 != nullptr);
  const attnres::tensor<float> pre_float = attnres::to_tensor(m.prefill(s_float, prompt, P));
  const auto pre_bf16 = m.prefill(s_bf16, prompt, P);
  REQUIRE(std::equal(pre_float.begin(), pre_float.end(), pre_bf16.data));  // the prompt runs in float
  double worst = 0, scale = 0;
  std::int32_t tok = 7;
  for (index_t t = 0; t < steps; ++t) {
    const attnres::tensor<float> a = attnres::to_tensor(m.decode_step(s_float, std::span<const std::int32_t>(&tok, 1)));
    const auto b = m.decode_step(s_bf16, std::span<const std::int32_t>(&tok, 1));
    for (index_t v = 0; v < V; ++v) {
      worst = std::max(worst, std::abs(static_cast<double>(a[v]) - b(0, v)));
      scale = std::max(scale, std::abs(static_cast<double>(a[v])));
    }
    tok = static_cast<std::int32_t>(std::max_element(a.begin(), a.end()) - a.begin());
  }
  INFO("largest logit difference " << worst << " against logits up to " << scale);
  // bf16 keeps 8 significant bits (relative error ≤ 2⁻⁹ a weight); sums of many such products
  // keep the logits' error near that size, far below the logits themselves
  CHECK(worst > 0);
  CHECK(worst < 0.02 * scale);
}

TEST_CASE("a bf16 decode state keeps the weights it was started with", "[model][generate][bf16]") {
  const attnres::model_config cfg{.vocab = 19, .d_model = 16, .n_heads = 2, .n_layers = 2, .d_ff = 24};
  attnres::LM<BlockAttnRes<2>> m(cfg);
  randomize(m, 3);
  auto before = m.start_decode(1, 4, decode_weights::bf16);
  const auto expected = decode_from_start(m, 1, 4, decode_weights::bf16);
  for (auto& p : m.parameters())
    if (p.name == "layers.0.attn.wo.weight")
      for (index_t e = 0; e < p.size(); ++e) p.value[e] *= 2;
  std::vector<float> got;
  for (index_t t = 0; t < 4; ++t) {
    const std::int32_t tok = static_cast<std::int32_t>((t * 5 + 1) % cfg.vocab);
    const auto lg = m.decode_step(before, std::span<const std::int32_t>(&tok, 1));
    got.insert(got.end(), lg.row(0), lg.row(0) + cfg.vocab);
  }
  CHECK(got == expected);                                                  // the snapshot
  CHECK(decode_from_start(m, 1, 4, decode_weights::bf16) != expected);  // a new state sees the change
}

TEST_CASE("generate decodes with bf16 weights when asked", "[model][generate][bf16]") {
  attnres::LM<Sum> m({.vocab = 23, .d_model = 16, .n_heads = 2, .n_layers = 2, .d_ff = 24});
  randomize(m, 8);
  const std::vector<std::int32_t> prompt{1, 2, 3};
  attnres::rng g1(1);
  const auto greedy = attnres::generate(m, prompt, 6, {.temperature = 0.0}, g1, {}, decode_weights::bf16);
  // greedy with bf16 weights: the argmax of each bf16 decode step
  auto state = m.start_decode(1, 9, decode_weights::bf16);
  auto lg = m.prefill(state, prompt, 3);
  std::vector<std::int32_t> seq(prompt);
  const float* last = lg.row(2);
  for (int i = 0; i < 6; ++i) {
    const auto next = static_cast<std::int32_t>(std::max_element(last, last + 23) - last);
    seq.push_back(next);
    lg = m.decode_step(state, std::span<const std::int32_t>(&next, 1));
    last = lg.row(0);
  }
  CHECK(greedy == seq);
}

TEST_CASE("bf16 decoding refuses weights with no finite bf16 value and models it cannot run", "[model][errors][bf16]") {
  const attnres::model_config cfg{.vocab = 11, .d_model = 8, .n_heads = 2, .n_layers = 2, .d_ff = 12};
  attnres::LM<Sum> m(cfg);
  randomize(m, 2);
  auto set = [&](const std::string& name, index_t e, float value) {
    for (auto& p : m.parameters())
      if (p.name == name) p.value[e] = value;
  };
  // w_down is (D, F) = (8, 12): element 6·12 + 5 is (6,5)
  set("layers.1.mlp.w_down.weight", 6 * 12 + 5, std::numeric_limits<float>::quiet_NaN());
  CHECK_THROWS_CONTAINING(m.start_decode(1, 4, decode_weights::bf16), attnres::numeric_error,
                          contains("layers.1.mlp.w_down.weight: element (6,5) = nan has no finite bf16 value"));
  set("layers.1.mlp.w_down.weight", 6 * 12 + 5, 0.5f);
  set("layers.0.attn.wk.weight", 3 * 8 + 2, std::numeric_limits<float>::max());  // rounds to Inf
  CHECK_THROWS_CONTAINING(m.start_decode(1, 4, decode_weights::bf16), attnres::numeric_error,
                          contains("layers.0.attn.wk.weight: element (3,2)"));
  set("layers.0.attn.wk.weight", 3 * 8 + 2, 3.0e38f);  // large, but bf16 has it
  CHECK_NOTHROW(m.start_decode(1, 4, decode_weights::bf16));
  // float decoding does not look at the weights' bf16 values
  set("layers.0.attn.wk.weight", 3 * 8 + 2, std::numeric_limits<float>::max());
  CHECK_NOTHROW(m.start_decode(1, 4));

  // a state whose bf16 weights are not the model's (hand-made) is refused, not read past its end
  auto state = m.start_decode(1, 4);
  state.bf16 = std::make_shared<const attnres::LM<Sum>::bf16_decode_weights>();
  const std::int32_t tok = 1;
  CHECK_THROWS_CONTAINING(m.decode_step(state, std::span<const std::int32_t>(&tok, 1)), attnres::usage_error,
                          contains("holds bf16 weights of 0 layers, but the model has 2"));

  attnres::LM<Sum, attnres::RMSNorm, attnres::SwiGLU, attnres::backend::cpu, double> in_double(cfg);
  CHECK_THROWS_CONTAINING(in_double.start_decode(1, 4, decode_weights::bf16), attnres::usage_error,
                          contains("bf16 weights needs a float model"));
  CHECK(attnres::parse_decode_weights("bf16") == decode_weights::bf16);
  CHECK_THROWS_CONTAINING(attnres::parse_decode_weights("fp8"), attnres::usage_error, contains("expected f32 or bf16"));
}

TEST_CASE("decode_loss through the KV cache equals the forward loss; with bf16 weights it is close",
          "[model][generate][bf16]") {
  const attnres::model_config cfg{.vocab = 29, .d_model = 32, .n_heads = 4, .n_layers = 2, .d_ff = 40};
  attnres::LM<BlockAttnRes<2>> m(cfg);
  m.init_weights(11);
  const index_t B = 3, T = 9;
  std::vector<std::int32_t> tok(B * T), tgt(B * T);
  for (index_t i = 0; i < B * T; ++i) {
    tok[i] = static_cast<std::int32_t>((i * 7 + 2) % cfg.vocab);
    tgt[i] = static_cast<std::int32_t>((i * 5 + 1) % cfg.vocab);
  }
  const double forward = m.loss(tok, tgt, B, T);
  const double decoded = attnres::decode_loss(m, tok, tgt, B, T, decode_weights::f32);
  const double decoded16 = attnres::decode_loss(m, tok, tgt, B, T, decode_weights::bf16);
  CHECK(decoded == Approx(forward).epsilon(1e-6));
  CHECK(decoded16 != decoded);
  CHECK(decoded16 == Approx(forward).epsilon(1e-3));
  std::vector<std::int32_t> bad = tgt;
  bad[4] = 29;
  CHECK_THROWS_CONTAINING(attnres::decode_loss(m, tok, bad, B, T, decode_weights::f32), attnres::usage_error,
                          contains("target 29 at position 4 is outside the vocabulary [0, 29)"));
  CHECK_THROWS_CONTAINING(attnres::decode_loss(m, tok, tgt, B, T + 1, decode_weights::f32), attnres::shape_error,
                          contains("27 tokens and 27 targets for batch × T = 3 × 10"));
}
