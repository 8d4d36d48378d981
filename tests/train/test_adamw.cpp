// train/adamw: one and two steps against torch.optim.AdamW, decay only where param.decay, a
// bit-exact save/load round trip, and the errors for mismatched lists and bad checkpoints.

#include "test_util.hpp"

#include <attnres/io/safetensors.hpp>
#include <attnres/train/adamw.hpp>

#include <cstring>
#include <string>
#include <vector>

using attnres::index_t;
using attnres::param_list;
using attnres::train::adamw;
using attnres::train::adamw_config;
using attnres_test::contains;
namespace io = attnres::io;
namespace backend = attnres::backend;

namespace {

// Two parameters as a model would expose them: "w" (2,3) decayed, "g" (3) not (a norm gain).
template <class T>
struct toy {
  std::vector<T> w{T(0.5), T(-1.25), T(2.0), T(0.75), T(-0.3), T(1.5)}, dw = std::vector<T>(6);
  std::vector<T> g{T(1.0), T(0.9), T(1.1)}, dg = std::vector<T>(3);

  param_list<T> params() {
    return {{"w", {2, 3}, w.data(), dw.data(), true}, {"g", {3}, g.data(), dg.data(), false}};
  }
  // The gradients of step 1 and step 2 (0-based k), the same as in the torch script below.
  void set_grads(int k) {
    static constexpr double gw[2][6] = {{0.1, -0.2, 0.3, -0.4, 0.5, -0.6}, {-0.3, 0.1, 0.0, 0.2, 0.25, -0.05}};
    static constexpr double gg[2][3] = {{0.05, -0.01, 0.2}, {0.5, 0.02, -0.1}};
    for (int i = 0; i < 6; ++i) dw[static_cast<std::size_t>(i)] = static_cast<T>(gw[k][i]);
    for (int i = 0; i < 3; ++i) dg[static_cast<std::size_t>(i)] = static_cast<T>(gg[k][i]);
  }
};

const adamw_config kConfig{.lr = 0.01, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1};

// Expected values from torch 1.13 (float32 and float64 runs of the same script):
//   w = torch.tensor([[0.5, -1.25, 2.0], [0.75, -0.3, 1.5]], requires_grad=True)
//   g = torch.tensor([1.0, 0.9, 1.1], requires_grad=True)
//   opt = torch.optim.AdamW([{'params': [w], 'weight_decay': 0.1},
//                            {'params': [g], 'weight_decay': 0.0}],
//                           lr=0.01, betas=(0.9, 0.95), eps=1e-8)
//   for gw, gg in (grads of step 1, grads of step 2):   # see toy::set_grads
//       w.grad = torch.tensor(gw); g.grad = torch.tensor(gg); opt.step(); print(w, g)
constexpr float kW1f[] = {0.4895000159740448f, -1.2387499809265137f, 1.9880000352859497f,
                          0.7592499852180481f, -0.30970001220703125f, 1.5084999799728394f};
constexpr float kG1f[] = {0.9900000095367432f, 0.9099999666213989f, 1.090000033378601f};
constexpr float kW2f[] = {0.4939034581184387f, -1.2348276376724243f, 1.9792256355285645f,
                          0.7611744403839111f, -0.3187832236289978f, 1.5143793821334839f};
constexpr float kG2f[] = {0.9820267558097839f, 0.906366229057312f, 1.0873163938522339f};
constexpr double kW1d[] = {0.4895000009999999, -1.2387500005, 1.9880000003333334,
                           0.75924999975, -0.30969999979999996, 1.5084999998333333};
constexpr double kG1d[] = {0.9900000019999996, 0.90999999000001, 1.0900000005000001};
constexpr double kW2d[] = {0.49390345845786243, -1.2348275561897144, 1.979225523188992,
                           0.761174444145562, -0.31878323024366034, 1.514379401272052};
constexpr double kG2d[] = {0.9820267217549037, 0.906366252775937, 1.0873163061902145};

template <class T, class B>
void check_against_torch(const T* w1, const T* g1, const T* w2, const T* g2, double rtol) {
  toy<T> m;
  auto params = m.params();
  adamw<T, B> opt(kConfig, params);
  CHECK(opt.steps() == 0);
  m.set_grads(0);
  opt.step(params, kConfig.lr);
  CHECK(opt.steps() == 1);
  REQUIRE_CLOSE(m.w.data(), w1, 6, rtol, 0.0);
  REQUIRE_CLOSE(m.g.data(), g1, 3, rtol, 0.0);
  m.set_grads(1);
  opt.step(params);  // the configured lr
  CHECK(opt.steps() == 2);
  REQUIRE_CLOSE(m.w.data(), w2, 6, rtol, 0.0);
  REQUIRE_CLOSE(m.g.data(), g2, 3, rtol, 0.0);
}

}  // namespace

TEST_CASE("adamw: two steps match torch.optim.AdamW (float and double, cpu and reference)", "[train][adamw]") {
  // float: a few ulps (torch orders the float32 operations slightly differently)
  check_against_torch<float, backend::cpu>(kW1f, kG1f, kW2f, kG2f, 1e-6);
  check_against_torch<float, backend::reference>(kW1f, kG1f, kW2f, kG2f, 1e-6);
  check_against_torch<double, backend::cpu>(kW1d, kG1d, kW2d, kG2d, 1e-13);
  check_against_torch<double, backend::reference>(kW1d, kG1d, kW2d, kG2d, 1e-13);
}

TEST_CASE("adamw: weight decay is decoupled and skipped for decay=false params", "[train][adamw]") {
  // With zero gradients the moments stay zero, so the Adam update is exactly 0 and only the
  // decoupled decay p ← p·(1 − lr·λ) acts: on "w" (decay = true), not on "g".
  toy<double> m;
  auto params = m.params();
  adamw<double> opt(kConfig, params);
  opt.step(params, 0.5);
  for (std::size_t i = 0; i < 6; ++i) CHECK(m.w[i] == Approx(toy<double>{}.w[i] * (1.0 - 0.5 * 0.1)).epsilon(1e-15));
  CHECK(m.g == toy<double>{}.g);

  // The decay flag is read per step: flipping it changes the update (the list check is by name
  // and shape only).
  params[1].decay = true;
  opt.step(params, 0.5);
  for (std::size_t i = 0; i < 3; ++i) CHECK(m.g[i] == Approx(toy<double>{}.g[i] * 0.95).epsilon(1e-15));
}

TEST_CASE("adamw: save/load round trip resumes bit-identically", "[train][adamw]") {
  // Run A: two steps straight. Run B: one step, save, a fresh optimizer loads the state, one step.
  toy<float> a;
  auto pa = a.params();
  adamw<float> opt_a(kConfig, pa);
  a.set_grads(0);
  opt_a.step(pa, 0.01);
  a.set_grads(1);
  opt_a.step(pa, 0.007);

  toy<float> b;
  auto pb = b.params();
  std::vector<std::byte> bytes;
  {
    adamw<float> opt_b(kConfig, pb);
    b.set_grads(0);
    opt_b.step(pb, 0.01);
    io::safetensors_writer w;
    opt_b.save_state(w);
    bytes = w.bytes();
  }
  const auto f = io::safetensors_file::parse(bytes, "ckpt.safetensors");
  CHECK(f.names() == std::vector<std::string>{"optim.m.g", "optim.m.w", "optim.v.g", "optim.v.w"});
  CHECK(f.info("optim.m.w").shape == std::vector<index_t>{2, 3});
  CHECK(f.info("optim.m.w").dtype == "F32");
  CHECK(f.metadata_value("optim.step") == "1");
  CHECK(f.metadata_value("optim.type") == "adamw");
  CHECK(f.metadata_value("optim.beta2") == "0.95");
  CHECK(f.metadata_value("optim.weight_decay") == "0.1");

  adamw<float> opt_c(kConfig, pb);
  opt_c.load_state(f, pb);
  CHECK(opt_c.steps() == 1);
  b.set_grads(1);
  opt_c.step(pb, 0.007);
  CHECK(opt_c.steps() == 2);
  CHECK(std::memcmp(a.w.data(), b.w.data(), sizeof(float) * 6) == 0);
  CHECK(std::memcmp(a.g.data(), b.g.data(), sizeof(float) * 3) == 0);

  // A custom prefix keeps several optimizers in one file apart.
  io::safetensors_writer w2;
  opt_c.save_state(w2, "opt2.");
  const auto f2 = io::safetensors_file::parse(w2.bytes());
  CHECK(f2.contains("opt2.v.w"));
  adamw<float> opt_d(kConfig, pb);
  opt_d.load_state(f2, pb, "opt2.");
  CHECK(opt_d.steps() == 2);
}

TEST_CASE("adamw: the params list must be the one the optimizer was built with", "[train][adamw]") {
  toy<float> m;
  auto params = m.params();
  adamw<float> opt(kConfig, params);

  auto fewer = params;
  fewer.pop_back();
  REQUIRE_THROWS_AS(opt.step(fewer, 0.01), attnres::usage_error);
  REQUIRE_THROWS_WITH(opt.step(fewer, 0.01), contains("has 1 entries but the optimizer was built for 2"));

  auto renamed = params;
  renamed[1].name = "h";
  REQUIRE_THROWS_AS(opt.step(renamed, 0.01), attnres::usage_error);
  REQUIRE_THROWS_WITH(opt.step(renamed, 0.01), contains("parameter 1 is 'h'") && contains("built with 'g'"));

  auto reshaped = params;
  reshaped[0].shape = {3, 2};
  REQUIRE_THROWS_WITH(opt.step(reshaped, 0.01), contains("'w' [3,2]") && contains("'w' [2,3]"));

  auto swapped = params;
  std::swap(swapped[0], swapped[1]);
  REQUIRE_THROWS_AS(opt.step(swapped, 0.01), attnres::usage_error);
  REQUIRE_THROWS_AS(opt.zero_grad(swapped), attnres::usage_error);
  CHECK(opt.steps() == 0);  // nothing happened

  REQUIRE_THROWS_WITH(opt.step(params, -1.0), contains("lr must be finite and non-negative"));

  m.set_grads(0);
  opt.zero_grad(params);
  CHECK(m.dw == std::vector<float>(6, 0.0f));
  CHECK(m.dg == std::vector<float>(3, 0.0f));
}

TEST_CASE("adamw: configuration and parameter-list errors", "[train][adamw]") {
  toy<float> m;
  auto params = m.params();
  REQUIRE_THROWS_WITH(adamw<float>({.beta1 = 1.0}, params), contains("beta1 must be in [0, 1)"));
  REQUIRE_THROWS_WITH(adamw<float>({.beta2 = -0.1}, params), contains("beta2"));
  REQUIRE_THROWS_WITH(adamw<float>({.weight_decay = -1}, params), contains("weight_decay"));
  REQUIRE_THROWS_AS(adamw<float>({.eps = -1}, params), attnres::config_error);
  auto dup = params;
  dup[1].name = "w";
  REQUIRE_THROWS_WITH(adamw<float>(kConfig, dup), contains("'w' appears twice"));
  auto no_grad = params;
  no_grad[0].grad = nullptr;
  REQUIRE_THROWS_WITH(adamw<float>(kConfig, no_grad), contains("'w' has no value or gradient buffer"));
}

TEST_CASE("adamw: load_state names the missing or mismatched tensor", "[train][adamw]") {
  toy<float> m;
  auto params = m.params();
  adamw<float> opt(kConfig, params);
  m.set_grads(0);
  opt.step(params, 0.01);
  const std::vector<float> w_after = m.w;

  const auto file = [](auto&& fill) {
    io::safetensors_writer w;
    fill(w);
    return io::safetensors_file::parse(w.bytes(), "ckpt.safetensors");
  };
  const auto zeros = [](std::vector<index_t> shape) { return attnres::tensor<float>(std::move(shape)); };
  const auto full = [&](io::safetensors_writer& w) {
    w.set_metadata("optim.step", "7");
    w.add("optim.m.w", zeros({2, 3}));
    w.add("optim.v.w", zeros({2, 3}));
    w.add("optim.m.g", zeros({3}));
    w.add("optim.v.g", zeros({3}));
  };

  const auto missing = file([&](io::safetensors_writer& w) {
    w.set_metadata("optim.step", "7");
    w.add("optim.m.w", zeros({2, 3}));
    w.add("optim.v.w", zeros({2, 3}));
    w.add("optim.m.g", zeros({3}));
  });
  REQUIRE_THROWS_AS(opt.load_state(missing, params), attnres::io_error);
  REQUIRE_THROWS_WITH(opt.load_state(missing, params),
                      contains("ckpt.safetensors") && contains("no tensor 'optim.v.g'") &&
                          contains("parameter 'g'"));

  const auto wrong_shape = file([&](io::safetensors_writer& w) {
    w.set_metadata("optim.step", "7");
    w.add("optim.m.w", zeros({3, 2}));
    w.add("optim.v.w", zeros({2, 3}));
    w.add("optim.m.g", zeros({3}));
    w.add("optim.v.g", zeros({3}));
  });
  REQUIRE_THROWS_WITH(opt.load_state(wrong_shape, params),
                      contains("tensor 'optim.m.w' has shape [3,2] but parameter 'w' has shape [2,3]"));

  const auto extra = file([&](io::safetensors_writer& w) {
    full(w);
    w.add("optim.m.bias", zeros({3}));
    w.add("model.weight", zeros({3}));  // other tensors in a checkpoint are fine
  });
  REQUIRE_THROWS_WITH(opt.load_state(extra, params),
                      contains("'optim.m.bias' is optimizer state for a parameter that is not in the list"));

  const auto no_step = file([&](io::safetensors_writer& w) {
    full(w);
    w.set_metadata("optim.step", "x7");
  });
  REQUIRE_THROWS_WITH(opt.load_state(no_step, params), contains("'optim.step' is 'x7'"));

  const auto negative_v = file([&](io::safetensors_writer& w) {
    w.set_metadata("optim.step", "7");
    w.add("optim.m.w", zeros({2, 3}));
    attnres::tensor<float> v({2, 3});
    v[4] = -1.0f;
    w.add("optim.v.w", v);
    w.add("optim.m.g", zeros({3}));
    w.add("optim.v.g", zeros({3}));
  });
  REQUIRE_THROWS_WITH(opt.load_state(negative_v, params), contains("'optim.v.w' element 4"));

  // None of the failed loads changed the optimizer.
  CHECK(opt.steps() == 1);
  auto other = params;
  other.pop_back();
  REQUIRE_THROWS_AS(opt.load_state(file(full), other), attnres::usage_error);

  opt.load_state(file(full), params);
  CHECK(opt.steps() == 7);
  opt.zero_grad(params);
  opt.step(params, 0.0);  // zero moments, zero grads, lr 0: nothing moves
  CHECK(m.w == w_after);
}
