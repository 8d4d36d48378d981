// depth_diagnostics: hand-computed values, the numbers a model records (uniform α at zero
// queries, RMS and gradient norms against direct computations), that attaching a recorder
// changes nothing, and the bookkeeping an ablation relies on (shared weights start equal).

#include "test_util.hpp"

#include <attnres/model/diagnostics.hpp>
#include <attnres/model/lm.hpp>

#include <cmath>
#include <map>
#include <string>
#include <vector>

using namespace attnres_test;
using attnres::BlockAttnRes;
using attnres::depth_diagnostics;
using attnres::FullAttnRes;
using attnres::Sum;
using attnres::tensor;
namespace backend = attnres::backend;

namespace {

template <class Residual>
using RefModel = attnres::LM<Residual, attnres::RMSNorm, attnres::SwiGLU, backend::reference, double>;

attnres::model_config tiny_config() { return {.vocab = 7, .d_model = 4, .n_heads = 2, .n_layers = 2, .d_ff = 6}; }

// Six distinct tokens (B = 2, T = 3): each embedding row is read once.
const std::vector<std::int32_t> tokens{1, 4, 6, 0, 2, 3}, targets{4, 6, 0, 2, 3, 5};

template <class View>
double direct_rms(const View& v) {
  double s = 0;
  for (index_t i = 0; i < v.rows; ++i)
    for (index_t k = 0; k < v.cols; ++k) s += v(i, k) * v(i, k);
  return std::sqrt(s / static_cast<double>(v.rows * v.cols));
}

template <class View>
double direct_norm(const View& v) {
  double s = 0;
  for (index_t i = 0; i < v.rows; ++i)
    for (index_t k = 0; k < v.cols; ++k) s += v(i, k) * v(i, k);
  return std::sqrt(s);
}

}  // namespace

TEST_CASE("depth_diagnostics: hand-computed α statistics, RMS and gradient norm", "[model][diagnostics]") {
  depth_diagnostics d;
  d.per_token_alpha = true;
  d.step = 42;
  d.begin_pass(1, 2);  // L = 1, M = 2 tokens
  // h (M = 2, D = 2) = [[1, 2], [3, 4]]: RMS = sqrt(30 / 4)
  const double h[] = {1, 2, 3, 4};
  // α (2 sources, M = 2): token 0 = (1, 0) one-hot, token 1 = (0.25, 0.75)
  const double alpha[] = {1.0, 0.25, 0.0, 0.75};
  d.on_gather<double>(1, {h, 2, 2}, {alpha, 2, 2});
  const double v[] = {0, 0, 0, 2};  // RMS = sqrt(4 / 4) = 1
  d.on_source<double>(1, {v, 2, 2});
  const double dv[] = {3, 0, 0, 4};  // ‖dv‖ = 5
  d.on_source_grad<double>(1, {dv, 2, 2});

  const auto& r = d.last();
  CHECK(r.step == 42);
  CHECK(r.tokens == 2);
  REQUIRE(r.points.size() == 2);
  REQUIRE(r.sources.size() == 2);
  const auto& p = r.points[0];
  CHECK(p.l == 1);
  CHECK(p.input_rms == Approx(std::sqrt(7.5)).epsilon(1e-15));
  REQUIRE(p.n_sources() == 2);
  CHECK(p.alpha_mean[0] == Approx(0.625).epsilon(1e-15));
  CHECK(p.alpha_mean[1] == Approx(0.375).epsilon(1e-15));
  // token 0: entropy 0; token 1: −(¼ ln ¼ + ¾ ln ¾); the mean over the two tokens
  const double h1 = -(0.25 * std::log(0.25) + 0.75 * std::log(0.75));
  CHECK(p.entropy == Approx(h1 / 2).epsilon(1e-14));
  CHECK(p.effective_sources == Approx(std::exp(h1 / 2)).epsilon(1e-14));
  REQUIRE(p.alpha_tokens.size() == 4);
  CHECK(p.alpha_tokens[1] == 0.25f);
  CHECK(p.alpha_tokens[3] == 0.75f);
  CHECK(r.sources[1].output_rms == Approx(1.0).epsilon(1e-15));
  CHECK(r.sources[1].grad_norm == Approx(5.0).epsilon(1e-15));
  CHECK(std::isnan(r.sources[0].output_rms));  // never reported
  CHECK(std::isnan(r.points[1].input_rms));

  CHECK_THROWS_AS(d.on_gather<double>(3, {h, 2, 2}, {alpha, 2, 2}), attnres::usage_error);
  CHECK_THROWS_AS(d.on_source<double>(-1, {v, 2, 2}), attnres::usage_error);
  depth_diagnostics empty;
  CHECK_THROWS_AS(empty.last(), attnres::usage_error);
  CHECK_THROWS_AS(empty.on_source<double>(0, {v, 2, 2}), attnres::usage_error);
}

TEMPLATE_TEST_CASE("zero pseudo-queries: every α is uniform, entropy = ln n, effective sources = n",
                   "[model][diagnostics]", FullAttnRes, BlockAttnRes<2>, BlockAttnRes<4>) {
  RefModel<TestType> m(tiny_config());
  m.init_weights(5);  // queries stay 0
  depth_diagnostics d;
  d.per_token_alpha = true;
  m.set_diagnostics(&d);
  m.zero_grad();
  m.forward_backward(tokens, targets, 2, 3);
  REQUIRE(d.records.size() == 1);
  const auto& r = d.last();
  const int L = m.n_sublayers();
  REQUIRE(r.n_sublayers == L);
  for (int l = 1; l <= L + 1; ++l) {
    CAPTURE(l);
    const auto& p = r.points[l - 1];
    const index_t n = m.residual().n_sources(l);
    REQUIRE(p.n_sources() == n);
    for (double a : p.alpha_mean) CHECK(a == Approx(1.0 / static_cast<double>(n)).epsilon(1e-14));
    CHECK(p.entropy == Approx(std::log(static_cast<double>(n))).margin(1e-14));
    CHECK(p.effective_sources == Approx(static_cast<double>(n)).epsilon(1e-13));
    // the per-token copy is the policy's α
    const auto alpha = m.residual().depth_weights(m.residual_cache(), l);
    REQUIRE(static_cast<index_t>(p.alpha_tokens.size()) == alpha.rows * alpha.cols);
    for (index_t j = 0; j < alpha.rows; ++j)
      for (index_t t = 0; t < alpha.cols; ++t)
        CHECK(p.alpha_tokens[static_cast<std::size_t>(j * alpha.cols + t)] == static_cast<float>(alpha(j, t)));
  }
}

TEST_CASE("FullAttnRes: recorded RMS and gradient norms equal a direct computation", "[model][diagnostics]") {
  RefModel<FullAttnRes> m(tiny_config());
  m.init_weights(9);
  depth_diagnostics d;
  m.set_diagnostics(&d);
  m.zero_grad();
  m.forward_backward(tokens, targets, 2, 3);
  const auto& r = d.last();
  const auto& c = m.residual_cache();  // sources v_0..v_L, gather outputs h_l, ∂ℒ/∂v_j
  const int L = m.n_sublayers();
  for (int j = 0; j <= L; ++j) {
    CAPTURE(j);
    CHECK(r.sources[j].output_rms == Approx(direct_rms(c.value[j].mat())).epsilon(1e-14));
    CHECK(r.sources[j].grad_norm == Approx(direct_norm(c.dvalue[j].mat())).epsilon(1e-14));
    CHECK(r.sources[j].grad_norm > 0);
  }
  for (int l = 1; l <= L + 1; ++l) {
    CAPTURE(l);
    CHECK(r.points[l - 1].input_rms == Approx(direct_rms(c.h[l - 1].get("test", l))).epsilon(1e-14));
    // zero queries: h_l is the plain mean of v_0 .. v_{l-1}
    tensor<double> mean({6, 4});
    for (int j = 0; j < l; ++j)
      for (index_t i = 0; i < mean.size(); ++i) mean[i] += c.value[j][i] / l;
    CHECK(r.points[l - 1].input_rms == Approx(direct_rms(mean.mat())).epsilon(1e-12));
  }
  // Independent of the policy's bookkeeping: every token is distinct, so the embedding's
  // gradient rows are exactly ∂ℒ/∂x0 and their norms agree.
  CHECK(r.sources[0].grad_norm == Approx(direct_norm(m.grads.tok_embeddings.mat())).epsilon(1e-14));
}

TEST_CASE("Sum: no α is recorded, and h_out is the whole residual stream", "[model][diagnostics]") {
  RefModel<Sum> m(tiny_config());
  m.init_weights(9);
  depth_diagnostics d;
  m.set_diagnostics(&d);
  m.zero_grad();
  m.forward_backward(tokens, targets, 2, 3);
  const auto& r = d.last();
  const int L = m.n_sublayers();
  for (const auto& p : r.points) {
    CHECK(p.alpha_mean.empty());
    CHECK(std::isnan(p.entropy));
    CHECK(std::isnan(p.effective_sources));
    CHECK(p.input_rms > 0);
  }
  CHECK(r.points[L].input_rms == Approx(direct_rms(m.residual_cache().stream.mat())).epsilon(1e-14));
  // h_1 is the embedding itself
  CHECK(r.points[0].input_rms == Approx(r.sources[0].output_rms).epsilon(1e-15));
  CHECK(r.sources[0].grad_norm == Approx(direct_norm(m.grads.tok_embeddings.mat())).epsilon(1e-14));
  for (const auto& s : r.sources) CHECK(s.grad_norm > 0);
}

TEST_CASE("a forward-only pass records no gradient norms; every pass is its own record", "[model][diagnostics]") {
  RefModel<BlockAttnRes<2>> m(tiny_config());
  m.init_weights(2);
  depth_diagnostics d;
  m.set_diagnostics(&d);
  d.step = 7;
  (void)m.loss(tokens, targets, 2, 3);
  d.step = 8;
  m.forward_backward(tokens, targets, 2, 3);
  REQUIRE(d.records.size() == 2);
  CHECK(d.records[0].step == 7);
  CHECK(d.records[1].step == 8);
  for (const auto& s : d.records[0].sources) {
    CHECK(std::isnan(s.grad_norm));
    CHECK(s.output_rms > 0);
  }
  for (const auto& s : d.records[1].sources) CHECK(s.grad_norm > 0);
  CHECK(d.records[0].points[3].alpha_tokens.empty());  // per_token_alpha is off
  m.set_diagnostics(nullptr);
  (void)m.loss(tokens, targets, 2, 3);
  CHECK(d.records.size() == 2);
  CHECK(m.diagnostics() == nullptr);
}

TEMPLATE_TEST_CASE("attaching a recorder changes neither the loss nor any gradient", "[model][diagnostics]", Sum,
                   FullAttnRes, BlockAttnRes<2>) {
  attnres::LM<TestType> plain(tiny_config()), watched(tiny_config());  // float, cpu backend
  plain.init_weights(4);
  watched.init_weights(4);
  // non-zero queries, so α is not trivially uniform
  for (auto* m : {&plain, &watched}) {
    attnres::rng gen(11);
    for (auto& p : m->parameters())
      if (p.name.find("query") != std::string::npos)
        for (index_t i = 0; i < p.size(); ++i) p.value[i] = static_cast<float>(gen.normal());
  }
  depth_diagnostics d;
  d.per_token_alpha = true;
  watched.set_diagnostics(&d);
  plain.zero_grad();
  watched.zero_grad();
  const double a = plain.forward_backward(tokens, targets, 2, 3);
  const double b = watched.forward_backward(tokens, targets, 2, 3);
  CHECK(a == b);
  auto pp = plain.parameters(), pw = watched.parameters();
  REQUIRE(pp.size() == pw.size());
  for (std::size_t k = 0; k < pp.size(); ++k) {
    CAPTURE(pp[k].name);
    CHECK(std::equal(pp[k].grad, pp[k].grad + pp[k].size(), pw[k].grad));
  }
  CHECK(d.records.size() == 1);
}

TEST_CASE("init_weights(seed): every shared parameter is bitwise equal across residual policies",
          "[model][diagnostics][ablation]") {
  const attnres::model_config cfg{.vocab = 256, .d_model = 16, .n_heads = 2, .n_layers = 4, .d_ff = 24};
  attnres::LM<Sum> sum(cfg);
  attnres::LM<BlockAttnRes<4>> block(cfg);
  attnres::LM<FullAttnRes> full(cfg);
  sum.init_weights(123);
  block.init_weights(123);
  full.init_weights(123);
  std::map<std::string, std::vector<float>> reference;
  for (const auto& p : sum.parameters()) reference[p.name].assign(p.value, p.value + p.size());
  for (auto params : {block.parameters(), full.parameters()}) {
    int shared = 0, own = 0;
    for (const auto& p : params) {
      CAPTURE(p.name);
      const auto it = reference.find(p.name);
      if (it == reference.end()) {  // the policy's own: pseudo-queries 0, key-norm gains 1
        ++own;
        const bool query = p.name.find("query") != std::string::npos;
        for (index_t i = 0; i < p.size(); ++i) CHECK(p.value[i] == (query ? 0.0f : 1.0f));
        continue;
      }
      ++shared;
      CHECK(std::equal(p.value, p.value + p.size(), it->second.begin(), it->second.end()));
    }
    CHECK(shared == static_cast<int>(reference.size()));
    CHECK(own == 2 * (2 * 4 + 1));  // query + gain for L = 8 gather points and the output
  }
  // and a different seed gives different weights (the comparison above is not vacuous)
  attnres::LM<Sum> other(cfg);
  other.init_weights(124);
  CHECK(other.parameters()[0].value[0] != sum.parameters()[0].value[0]);
}
