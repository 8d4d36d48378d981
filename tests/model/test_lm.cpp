// The whole language model: PyTorch autograd parity, central differences, the zero-init
// equivalence with the PreNorm baseline, decode ≡ prefill, and hostile weight files.

#include "test_util.hpp"

#include <attnres/generate/generate.hpp>
#include <attnres/io/safetensors.hpp>
#include <attnres/model/dispatch.hpp>
#include <attnres/model/lm.hpp>
#include <attnres/testing/gradient_check.hpp>

#include <filesystem>
#include <string>

using namespace attnres_test;
using attnres::BlockAttnRes;
using attnres::FullAttnRes;
using attnres::Sum;
using attnres::tensor;
namespace io = attnres::io;
namespace backend = attnres::backend;

namespace {

const std::string model_golden_dir = std::string(ATTNRES_TEST_DATA_DIR) + "/golden/model/";

std::vector<std::int32_t> as_tokens(const tensor<double>& t) {
  std::vector<std::int32_t> out;
  for (double v : t) out.push_back(static_cast<std::int32_t>(v));
  return out;
}

template <class Model>
void compare_with_golden(const io::safetensors_file& f) {
  const auto [cfg, arch] = attnres::from_metadata(f.metadata(), f.source_name());
  Model m(cfg);
  m.load(f, {"grad.", "tokens", "targets", "logits", "loss"});
  const auto tokens = f.get<double>("tokens");
  const index_t B = tokens.dim(0), T = tokens.dim(1);
  const auto tok = as_tokens(tokens), tgt = as_tokens(f.get<double>("targets"));
  m.zero_grad();
  const double loss = m.forward_backward(tok, tgt, B, T);
  CHECK(loss == Approx(f.get<double>("loss")[0]).epsilon(1e-10));
  const auto logits = f.get<double>("logits");
  // logits of the training forward are kept in the model: recompute with forward() to compare
  const auto ours = m.forward(tok, B, T);
  REQUIRE_CLOSE(ours.data, logits.data(), logits.size(), 1e-9, 1e-12);
  int checked = 0;
  for (const auto& p : m.parameters()) {
    CAPTURE(p.name);
    const auto g = f.get<double>("grad." + p.name, p.shape);
    const auto cmp = compare(p.grad, g.data(), p.size(), 1e-4, 1e-10);
    INFO(cmp.describe());
    REQUIRE(cmp.ok);
    ++checked;
  }
  CHECK(checked == static_cast<int>(m.parameters().size()));
}

template <class Backend>
void golden_file(const std::string& name) {
  const auto f = io::safetensors_file::load(model_golden_dir + name);
  const auto [cfg, arch] = attnres::from_metadata(f.metadata(), f.source_name());
  attnres::with_lm_type<double, Backend>(arch, [&]<class Model>(std::type_identity<Model>) {
    compare_with_golden<Model>(f);
  });
}

}  // namespace

TEST_CASE("LM matches PyTorch autograd: logits, loss and every parameter gradient", "[model][golden]") {
  const auto file = GENERATE(as<std::string>{}, "sum.safetensors", "full.safetensors", "block_N2.safetensors",
                             "block_N4.safetensors", "block_N2_gelu_layernorm_tied.safetensors");
  CAPTURE(file);
  SECTION("reference backend") { golden_file<backend::reference>(file); }
  SECTION("cpu backend") { golden_file<backend::cpu>(file); }
}

TEST_CASE("a float32 safetensors file written by the PyTorch reference loads and gives its logits",
          "[model][golden][interop]") {
  const auto w = io::safetensors_file::load(model_golden_dir + "export_block2_f32.safetensors");
  const auto ref = io::safetensors_file::load(model_golden_dir + "export_block2_f32_logits.safetensors");
  const auto [cfg, arch] = attnres::from_metadata(w.metadata(), w.source_name());
  CHECK(arch.residual == "block");
  CHECK(arch.blocks == 2);
  attnres::LM<BlockAttnRes<2>> m(cfg);
  m.load(w);
  const auto tokens = ref.get<double>("tokens");
  const auto logits = ref.get<float>("logits");
  const auto ours = m.forward(as_tokens(tokens), 1, tokens.dim(1));
  REQUIRE_CLOSE(ours.data, logits.data(), logits.size(), 1e-4, 1e-5);
}

namespace {

attnres::model_config tiny_config() {
  return {.vocab = 7, .d_model = 4, .n_heads = 2, .n_layers = 2, .d_ff = 6};
}

}  // namespace

TEMPLATE_TEST_CASE("LM gradients match central differences in double", "[model][gradient]", Sum, FullAttnRes,
                   BlockAttnRes<2>) {
  attnres::LM<TestType, attnres::RMSNorm, attnres::SwiGLU, backend::reference, double> m(tiny_config());
  randomize(m, 3);
  const std::vector<std::int32_t> tok{1, 4, 6, 0, 2, 3}, tgt{4, 6, 0, 2, 3, 5};
  m.zero_grad();
  m.forward_backward(tok, tgt, 2, 3);
  for (auto& p : m.parameters()) {
    CAPTURE(p.name);
    tensor<double> x(p.shape), analytic(p.shape);
    std::copy(p.value, p.value + p.size(), x.data());
    std::copy(p.grad, p.grad + p.size(), analytic.data());
    const auto numeric = attnres::testing::numeric_gradient(
        [&] {
          std::copy(x.begin(), x.end(), p.value);
          return m.loss(tok, tgt, 2, 3);
        },
        x, 1e-6);
    std::copy(x.begin(), x.end(), p.value);
    const auto r = attnres::testing::compare_gradients(analytic, numeric, 1e-5, 1e-9);
    INFO(r.describe(p.name));
    REQUIRE(r.ok);
  }
}

TEMPLATE_TEST_CASE("zero-initialised queries give the Sum model's logits (same weights)", "[model][invariant]",
                   FullAttnRes, BlockAttnRes<1>, BlockAttnRes<2>, BlockAttnRes<4>) {
  // With w = 0 every gather point is (1/n)·(the PreNorm stream), and every consumer is a
  // scale-invariant RMSNorm: equal up to the ε effect (attnres-paper.md §1.3), which a tiny ε
  // makes negligible.
  auto cfg = tiny_config();
  cfg.norm_eps = 1e-14;
  attnres::LM<Sum, attnres::RMSNorm, attnres::SwiGLU, backend::cpu, double> base(cfg);
  attnres::LM<TestType, attnres::RMSNorm, attnres::SwiGLU, backend::cpu, double> att(cfg);
  base.init_weights(5);
  att.init_weights(5);  // same seed: identical shared weights, queries zero
  for (auto& p : att.parameters())
    if (p.name.find("_res.") != std::string::npos && p.name.find("query") != std::string::npos)
      for (index_t i = 0; i < p.size(); ++i) REQUIRE(p.value[i] == 0.0);
  const std::vector<std::int32_t> tok{1, 2, 3, 4, 5, 6, 0, 1};
  const auto a = base.forward(tok, 2, 4);
  const tensor<double> expect = attnres::to_tensor(a);
  const auto b = att.forward(tok, 2, 4);
  REQUIRE_CLOSE(b.data, expect.data(), expect.size(), 1e-9, 1e-12);
}

TEMPLATE_TEST_CASE("KV-cache decoding gives the logits of one full forward pass", "[model][generate]", Sum,
                   FullAttnRes, BlockAttnRes<2>, BlockAttnRes<4>) {
  attnres::model_config cfg{.vocab = 11, .d_model = 12, .n_heads = 3, .n_layers = 2, .d_ff = 20};
  attnres::LM<TestType> m(cfg);
  randomize(m, 9);
  const index_t B = 2, T = 9;
  std::vector<std::int32_t> tok(B * T);
  for (index_t i = 0; i < B * T; ++i) tok[i] = static_cast<std::int32_t>((i * 7 + 3) % cfg.vocab);
  const tensor<float> full = attnres::to_tensor(m.forward(tok, B, T));
  // prefill the first 3 positions, then decode one token at a time
  auto state = m.start_decode(B, T);
  const index_t P = 3;
  std::vector<std::int32_t> prompt;
  for (index_t b = 0; b < B; ++b)
    for (index_t t = 0; t < P; ++t) prompt.push_back(tok[b * T + t]);
  const auto pre = m.prefill(state, prompt, P);
  for (index_t b = 0; b < B; ++b)
    REQUIRE_CLOSE(pre.row(b * P), full.data() + (b * T) * cfg.vocab, P * cfg.vocab, 1e-4, 1e-5);
  for (index_t t = P; t < T; ++t) {
    CAPTURE(t);
    std::vector<std::int32_t> step{tok[t], tok[T + t]};
    const auto lg = m.decode_step(state, step);
    for (index_t b = 0; b < B; ++b)
      REQUIRE_CLOSE(lg.row(b), full.data() + (b * T + t) * cfg.vocab, cfg.vocab, 1e-4, 1e-5);
  }
  REQUIRE_THROWS_WITH(m.decode_step(state, std::vector<std::int32_t>{1, 2}), contains("decode state is full"));
}

TEMPLATE_TEST_CASE("decoding on a spinning team gives the logits of a fork and join per loop", "[model][generate]", Sum,
                   BlockAttnRes<4>) {
  // Wide enough that the matrix-vector products split over the threads. At batch ≤ 4 decode_step
  // runs on the team of core/parallel.hpp; with detail::decode_on_spinning_team off, on an OpenMP
  // fork and join per loop. Same thread count, same split of every loop: the same bits. Against
  // one thread the products' rows group differently (4 rows per pass), so only close.
  attnres::model_config cfg{.vocab = 301, .d_model = 128, .n_heads = 4, .n_layers = 2, .d_ff = 520};
  attnres::LM<TestType> m(cfg);
  randomize(m, 5);
  const index_t B = GENERATE(index_t(1), index_t(4), index_t(5));
  CAPTURE(B);
  auto decode_all = [&](int threads, bool team) {
    thread_count_scope scope(threads);
    const bool saved = attnres::detail::decode_on_spinning_team;
    attnres::detail::decode_on_spinning_team = team;
    auto state = m.start_decode(B, 6);
    std::vector<float> out;
    for (int t = 0; t < 6; ++t) {
      std::vector<std::int32_t> step;
      for (index_t b = 0; b < B; ++b) step.push_back(static_cast<std::int32_t>((t * 37 + b * 11) % cfg.vocab));
      const auto lg = m.decode_step(state, step);
      for (index_t b = 0; b < B; ++b) out.insert(out.end(), lg.row(b), lg.row(b) + cfg.vocab);
    }
    attnres::detail::decode_on_spinning_team = saved;
    return out;
  };
  // 4 heads: on 1 or 2 threads the attention's decode step runs head by head
  // (ops::attention_decode_step), on 3 its parts one after another
  const std::vector<float> on_team = decode_all(3, true), forked = decode_all(3, false), serial = decode_all(1, true);
  const std::vector<float> two_team = decode_all(2, true), two_forked = decode_all(2, false);
  REQUIRE(on_team.size() == forked.size());
  index_t differing = 0, differing_two = 0;
  for (std::size_t i = 0; i < on_team.size(); ++i) differing += on_team[i] != forked[i];
  for (std::size_t i = 0; i < two_team.size(); ++i) differing_two += two_team[i] != two_forked[i];
  CHECK(differing == 0);
  CHECK(differing_two == 0);
  REQUIRE_CLOSE(on_team.data(), serial.data(), static_cast<index_t>(serial.size()), 1e-4, 1e-4);  // logits ~ 6
  REQUIRE_CLOSE(two_team.data(), serial.data(), static_cast<index_t>(serial.size()), 1e-4, 1e-4);
}

// P with its prefetch calls recorded: which gather points were announced, and the data
// of the cache at each announcement (the gather point the policy had reached).
template <class P>
struct prefetch_recorder {
  static constexpr std::string_view name = P::name;
  static inline std::vector<int> points;
  template <class T = float, class Backend = attnres::default_backend>
  class with : public P::template with<T, Backend> {
    using base = typename P::template with<T, Backend>;

   public:
    using base::base;
    void prefetch(const typename base::Params& p, const typename base::Cache& c, int l) const {
      points.push_back(l);
      base::prefetch(p, c, l);
    }
  };
};

TEMPLATE_TEST_CASE("decoding asks the policy to prefetch each next gather point before the sublayer's output",
                   "[model][generate]", BlockAttnRes<2>, FullAttnRes) {
  // LM::decode_step announces gather points 2 .. L+1, each once, in order, from inside the
  // sublayer before it (attention's and both MLPs' before_output hook); prefill and training do
  // not. The logits are those of the policy without the recorder (a prefetch is only a hint).
  using recorded = prefetch_recorder<TestType>;
  const attnres::model_config cfg{.vocab = 29, .d_model = 16, .n_heads = 2, .n_layers = 2, .d_ff = 24};
  auto check = [&](auto& plain, auto& with_recorder) {
    randomize(plain, 3);
    randomize(with_recorder, 3);
    const std::vector<std::int32_t> prompt{1, 2, 3, 4, 5};
    auto s1 = plain.start_decode(1, 8);
    auto s2 = with_recorder.start_decode(1, 8);
    recorded::points.clear();
    plain.prefill(s1, prompt, 5);
    with_recorder.prefill(s2, prompt, 5);
    CHECK(recorded::points.empty());
    for (int t = 0; t < 2; ++t) {
      const std::int32_t tok = 7 + t;
      recorded::points.clear();
      const auto a = plain.decode_step(s1, std::span<const std::int32_t>(&tok, 1));
      const auto b = with_recorder.decode_step(s2, std::span<const std::int32_t>(&tok, 1));
      const std::vector<int> expected{2, 3, 4, 5};  // L = 4 sublayers: points 2 .. L+1
      CHECK(recorded::points == expected);
      for (index_t v = 0; v < cfg.vocab; ++v) CHECK(a.row(0)[v] == b.row(0)[v]);
    }
  };
  {
    attnres::LM<TestType> plain(cfg);
    attnres::LM<recorded> with_recorder(cfg);
    check(plain, with_recorder);
  }
  {
    attnres::LM<TestType, attnres::RMSNorm, attnres::GELU> plain(cfg);
    attnres::LM<recorded, attnres::RMSNorm, attnres::GELU> with_recorder(cfg);
    check(plain, with_recorder);
  }
}

TEST_CASE("a policy's prefetch is a no-op outside decoding and for points out of range", "[model][generate]") {
  // Called at any point, before begin, in training, or past L + 1, it must not touch anything:
  // the gathers that follow give the same bits as without it.
  const attnres::residual_config rc{4, 8, 1e-6, true};
  auto run = [&](auto policy, bool prefetch, bool keep) {
    using R = decltype(policy);
    attnres::rng g(5);
    auto params = policy.init_params();
    attnres::fill_normal(params.query, g, 0.0, 0.5);
    typename R::Cache cache;
    tensor<float> x0({1, 8}), h({1, 8}), v({1, 8});
    attnres::fill_normal(x0, g, 0.0, 1.0);
    std::vector<float> out;
    for (int l : {-1, 0, 1, 6}) if (prefetch) policy.prefetch(params, cache, l);
    policy.begin(cache, x0.mat(), keep);
    std::vector<tensor<float>> hs(6, tensor<float>({1, 8}));
    for (int l = 1; l <= 5; ++l) {
      if (prefetch)
        for (int k : {-1, 0, l, l + 1, 6, 100}) policy.prefetch(params, cache, k);
      auto& hl = keep ? hs[l - 1] : h;
      policy.gather(params, cache, l, hl.mat());
      out.insert(out.end(), hl.data(), hl.data() + 8);
      if (l <= 4) {
        for (index_t d = 0; d < 8; ++d) v.data()[d] = std::tanh(hl.data()[d]) + 0.1f * float(l);
        policy.push(cache, l, v.mat());
      }
    }
    return out;
  };
  for (bool keep : {false, true}) {
    CHECK(run(BlockAttnRes<2>::with<float>(rc), true, keep) == run(BlockAttnRes<2>::with<float>(rc), false, keep));
    CHECK(run(FullAttnRes::with<float>(rc), true, keep) == run(FullAttnRes::with<float>(rc), false, keep));
  }
}

TEST_CASE("generation is reproducible from a seed and greedy decoding is deterministic", "[model][generate]") {
  attnres::LM<BlockAttnRes<2>> m({.vocab = 13, .d_model = 8, .n_heads = 2, .n_layers = 2, .d_ff = 12});
  randomize(m, 4);
  const std::vector<std::int32_t> prompt{1, 2, 3};
  attnres::rng g1(7), g2(7);
  const auto a = attnres::generate(m, prompt, 10, {.temperature = 0.8, .top_k = 5}, g1);
  const auto b = attnres::generate(m, prompt, 10, {.temperature = 0.8, .top_k = 5}, g2);
  CHECK(a == b);
  CHECK(a.size() == 13);
  attnres::rng g3(1);
  const auto greedy = attnres::generate(m, prompt, 6, {.temperature = 0.0}, g3);
  // greedy equals argmax of a full forward pass at each step
  std::vector<std::int32_t> seq(prompt);
  for (int i = 0; i < 6; ++i) {
    const auto lg = m.forward(seq, 1, static_cast<index_t>(seq.size()));
    const float* last = lg.row(lg.rows - 1);
    seq.push_back(static_cast<std::int32_t>(std::max_element(last, last + 13) - last));
  }
  CHECK(greedy == seq);
}

TEST_CASE("weights save and load round trip, atomically, with DESIGN.md names", "[model][io]") {
  const auto dir = std::filesystem::temp_directory_path() / "attnres_test_lm_io";
  std::filesystem::create_directories(dir);
  attnres::LM<FullAttnRes> m({.vocab = 9, .d_model = 8, .n_heads = 2, .n_layers = 1, .d_ff = 10});
  m.init_weights(1);
  m.save(dir / "w.safetensors");
  const auto f = io::safetensors_file::load(dir / "w.safetensors");
  CHECK(f.contains("layers.0.attn.wq.weight"));
  CHECK(f.contains("layers.0.mlp_res.key_norm.weight"));
  CHECK(f.contains("out_res.query"));
  CHECK(f.metadata_value("residual") == "full");
  CHECK(f.metadata_value("blocks") == "2");
  attnres::LM<FullAttnRes> m2(m.config());
  m2.load(f);
  auto p1 = m.parameters(), p2 = m2.parameters();
  for (std::size_t i = 0; i < p1.size(); ++i) REQUIRE(std::equal(p1[i].value, p1[i].value + p1[i].size(), p2[i].value));
  std::filesystem::remove_all(dir);
}

TEST_CASE("hostile or mismatched weight files are refused with a clear error", "[model][io][errors]") {
  const attnres::model_config cfg{.vocab = 9, .d_model = 8, .n_heads = 2, .n_layers = 1, .d_ff = 10};
  attnres::LM<BlockAttnRes<2>> m(cfg);
  m.init_weights(2);
  io::safetensors_writer good;
  m.add_to(good);
  auto reload = [&](const io::safetensors_writer& w) {
    const auto bytes = w.bytes();
    const auto f = io::safetensors_file::parse(bytes, "test.safetensors");
    attnres::LM<BlockAttnRes<2>> other(cfg);
    other.load(f);
  };
  REQUIRE_NOTHROW(reload(good));

  SECTION("a missing tensor is named") {
    io::safetensors_writer w;
    for (const auto& [k, v] : attnres::to_metadata(cfg, m.arch())) w.set_metadata(k, v);
    for (const auto& p : m.parameters())
      if (p.name != "layers.0.attn.wk.weight") w.add_f32(p.name, {p.value, static_cast<std::size_t>(p.size())}, p.shape);
    REQUIRE_THROWS_WITH(reload(w), contains("missing tensor 'layers.0.attn.wk.weight'"));
  }
  SECTION("an extra tensor is named") {
    io::safetensors_writer w = good;
    const float x[2] = {1, 2};
    w.add_f32("layers.7.attn.wq.weight", x, {2});
    REQUIRE_THROWS_WITH(reload(w), contains("unexpected tensor 'layers.7.attn.wq.weight'"));
  }
  SECTION("a wrong shape is named") {
    io::safetensors_writer w;
    for (const auto& [k, v] : attnres::to_metadata(cfg, m.arch())) w.set_metadata(k, v);
    for (const auto& p : m.parameters()) {
      if (p.name == "norm.weight") {
        const float x[4] = {1, 1, 1, 1};
        w.add_f32(p.name, x, {4});
      } else {
        w.add_f32(p.name, {p.value, static_cast<std::size_t>(p.size())}, p.shape);
      }
    }
    REQUIRE_THROWS_WITH(reload(w), contains("norm.weight"));
  }
  SECTION("metadata inconsistent with the model") {
    io::safetensors_writer w = good;
    w.set_metadata("d_model", "16");
    REQUIRE_THROWS_WITH(reload(w), contains("does not match"));
    io::safetensors_writer w2 = good;
    w2.set_metadata("residual", "full");
    REQUIRE_THROWS_WITH(reload(w2), contains("holds a full"));
    io::safetensors_writer w3 = good;
    w3.set_metadata("n_heads", "3");
    REQUIRE_THROWS_WITH(reload(w3), contains("impossible model"));
    io::safetensors_writer w4 = good;
    w4.set_metadata("vocab", "lots");
    REQUIRE_THROWS_WITH(reload(w4), contains("'vocab' = 'lots' is not an integer"));
  }
  SECTION("NaN weights") {
    io::safetensors_writer w;
    for (const auto& [k, v] : attnres::to_metadata(cfg, m.arch())) w.set_metadata(k, v);
    for (const auto& p : m.parameters()) {
      std::vector<float> vals(p.value, p.value + p.size());
      if (p.name == "lm_head.weight") vals[3] = std::numeric_limits<float>::quiet_NaN();
      w.add_f32(p.name, vals, p.shape);
    }
    REQUIRE_THROWS_WITH(reload(w), contains("'lm_head.weight' contains NaN or Inf"));
  }
}

TEST_CASE("model configuration errors name the problem", "[model][errors]") {
  REQUIRE_THROWS_WITH(attnres::LM<BlockAttnRes<4>>({.vocab = 9, .d_model = 8, .n_heads = 2, .n_layers = 3, .d_ff = 4}),
                      contains("4 blocks do not divide 6 sublayers"));
  REQUIRE_THROWS_WITH(attnres::LM<Sum>({.vocab = 9, .d_model = 8, .n_heads = 3, .n_layers = 1, .d_ff = 4}),
                      contains("not divisible by n_heads 3"));
  REQUIRE_THROWS_WITH(attnres::LM<Sum>({.vocab = 9, .d_model = 6, .n_heads = 2, .n_layers = 1, .d_ff = 4}),
                      contains("must be even"));
  attnres::LM<Sum> m({.vocab = 9, .d_model = 8, .n_heads = 2, .n_layers = 1, .d_ff = 4});
  REQUIRE_THROWS_WITH(m.forward(std::vector<std::int32_t>{1, 2, 9}, 1, 3), contains("outside the vocabulary"));
  REQUIRE_THROWS_WITH(m.forward(std::vector<std::int32_t>{1, 2, 3}, 2, 2), contains("3 tokens for batch × T = 2 × 2"));
}
