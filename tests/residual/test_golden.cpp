// PyTorch parity: tests/golden/make_golden.py (PyTorch autograd, float64) wrote forward values,
// α and gradients of the toy stack for each policy; both backends must reproduce them.

#include "policy_types.hpp"

#include <attnres/io/safetensors.hpp>

#include <string>

using namespace attnres_test;
using attnres::BlockAttnRes;
using attnres::FullAttnRes;
using attnres::Sum;
using attnres::tensor;

namespace {

template <class P, class B>
void compare_with_golden(const attnres::io::safetensors_file& f) {
  const int L = std::stoi(f.metadata_value("L"));
  const index_t B_ = std::stoi(f.metadata_value("B")), T = std::stoi(f.metadata_value("T")),
              D = std::stoi(f.metadata_value("D"));
  const double eps = std::stod(f.metadata_value("eps"));
  const index_t M = B_ * T;
  attnres::testing::toy_stack<typename P::template with<double, B>> s(
      {.n_sublayers = L, .d_model = D, .norm_eps = eps}, M);
  auto load = [&](const std::string& name, std::vector<index_t> shape) { return f.get<double>(name, shape); };
  auto as_md = [&](tensor<double> t) {  // (B,T,D) → (M,D)
    tensor<double> out({M, D});
    std::copy(t.begin(), t.end(), out.begin());
    return out;
  };
  s.x0 = as_md(load("x0", {B_, T, D}));
  s.R = as_md(load("R", {B_, T, D}));
  for (int l = 1; l <= L; ++l) s.W[l - 1] = load("W." + std::to_string(l), {D, D});
  if constexpr (has_queries<P>) {
    s.params.query = load("query", {L + 1, D});
    s.params.key_gain = load("key_gain", {L + 1, D});
  }
  const double rtol = 1e-5, atol = 1e-10;
  const double loss = s.forward();
  CHECK(loss == Approx(load("loss", {1})[0]).epsilon(rtol));
  for (int l = 1; l <= L + 1; ++l) {
    CAPTURE(l);
    const auto h = load("h." + std::to_string(l), {B_, T, D});
    REQUIRE_CLOSE(s.h[l - 1].data(), h.data(), h.size(), rtol, atol);
    if (l <= L) {
      const auto v = load("v." + std::to_string(l), {B_, T, D});
      REQUIRE_CLOSE(s.v[l - 1].data(), v.data(), v.size(), rtol, atol);
    }
    if constexpr (has_queries<P>) {
      const index_t n = s.policy.n_sources(l);
      const auto a = load("alpha." + std::to_string(l), {n, M});
      const auto ours = s.policy.depth_weights(s.cache, l);
      REQUIRE(ours.rows == n);
      REQUIRE_CLOSE(ours.data, a.data(), a.size(), rtol, atol);
    }
  }
  s.backward();
  const auto dx0 = load("grad.x0", {B_, T, D});
  REQUIRE_CLOSE(s.dx0.data(), dx0.data(), dx0.size(), rtol, atol);
  for (int l = 1; l <= L; ++l) {
    CAPTURE(l);
    const auto dv = load("grad.v." + std::to_string(l), {B_, T, D});
    REQUIRE_CLOSE(s.dv[l - 1].data(), dv.data(), dv.size(), rtol, atol);
    const auto dW = load("grad.W." + std::to_string(l), {D, D});
    REQUIRE_CLOSE(s.dW[l - 1].data(), dW.data(), dW.size(), rtol, atol);
  }
  for (int l = 1; l <= L + 1; ++l) {
    CAPTURE(l);
    const auto dh = load("grad.h." + std::to_string(l), {B_, T, D});
    REQUIRE_CLOSE(s.dh[l - 1].data(), dh.data(), dh.size(), rtol, atol);
  }
  if constexpr (has_queries<P>) {
    const auto dq = load("grad.query", {L + 1, D}), dg = load("grad.key_gain", {L + 1, D});
    REQUIRE_CLOSE(s.grads.query.data(), dq.data(), dq.size(), rtol, atol);
    REQUIRE_CLOSE(s.grads.key_gain.data(), dg.data(), dg.size(), rtol, atol);
  }
}

template <class B>
void run_golden(const std::string& file) {
  const auto f = attnres::io::safetensors_file::load(std::string(ATTNRES_GOLDEN_DIR) + "/" + file);
  const std::string policy = f.metadata_value("policy");
  const int N = std::stoi(f.metadata_value("N"));
  if (policy == "sum") return compare_with_golden<Sum, B>(f);
  if (policy == "full") return compare_with_golden<FullAttnRes, B>(f);
  REQUIRE(policy == "block");
  switch (N) {
    case 1: return compare_with_golden<BlockAttnRes<1>, B>(f);
    case 2: return compare_with_golden<BlockAttnRes<2>, B>(f);
    case 3: return compare_with_golden<BlockAttnRes<3>, B>(f);
    case 4: return compare_with_golden<BlockAttnRes<4>, B>(f);
    default: FAIL("no test instantiation for BlockAttnRes<" << N << ">");
  }
}

}  // namespace

TEST_CASE("policies match PyTorch autograd golden files", "[residual][golden]") {
  const auto file = GENERATE(as<std::string>{}, "sum_L4.safetensors", "full_L4.safetensors",
                             "full_L3_B1T1D7.safetensors", "block_L4_N1.safetensors", "block_L4_N2.safetensors",
                             "block_L4_N4.safetensors", "block_L6_N2.safetensors", "block_L6_N3.safetensors");
  CAPTURE(file);
  SECTION("reference backend") { run_golden<attnres::backend::reference>(file); }
  SECTION("cpu backend") { run_golden<attnres::backend::cpu>(file); }
}
