// train/grad_clip: the global norm and clipping against torch.nn.utils.clip_grad_norm_, no-op
// below the threshold, and the error naming the first non-finite gradient.

#include "test_util.hpp"

#include <attnres/train/grad_clip.hpp>

#include <cmath>
#include <limits>
#include <vector>

using attnres::param_list;
using attnres::train::clip_grad_norm;
using attnres::train::global_grad_norm;
using attnres_test::contains;
namespace backend = attnres::backend;

namespace {

template <class T>
struct toy {
  std::vector<T> a = std::vector<T>(4), da{T(3), T(-4), T(1), T(2)};
  std::vector<T> b = std::vector<T>(3), db{T(0.5), T(-1.5), T(2.5)};
  std::vector<T> c, dc;  // an empty parameter is allowed
  param_list<T> params() {
    return {{"a", {2, 2}, a.data(), da.data(), true},
            {"empty", {0}, c.data(), dc.data(), true},
            {"b", {3}, b.data(), db.data(), false}};
  }
};

// torch 1.13:
//   a.grad = torch.tensor([[3., -4.], [1., 2.]]); b.grad = torch.tensor([0.5, -1.5, 2.5])
//   n = torch.nn.utils.clip_grad_norm_([a, b], 2.0)
constexpr double kNorm = 6.224949798994366;  // float64 run (float32: 6.224950313568115)
constexpr float kAf[] = {0.9638630151748657f, -1.2851506471633911f, 0.3212876617908478f, 0.6425753235816956f};
constexpr float kBf[] = {0.1606438308954239f, -0.48193150758743286f, 0.8032191395759583f};
constexpr double kAd[] = {0.9638630398443138, -1.2851507197924184, 0.3212876799481046, 0.6425753598962092};
constexpr double kBd[] = {0.1606438399740523, -0.4819315199221569, 0.8032191998702615};

}  // namespace

TEST_CASE("clip_grad_norm: matches torch.nn.utils.clip_grad_norm_", "[train][grad_clip]") {
  {
    toy<float> m;
    const auto params = m.params();
    CHECK(global_grad_norm(params) == Approx(kNorm).epsilon(1e-12));  // accumulated in double
    CHECK(clip_grad_norm(params, 2.0) == Approx(kNorm).epsilon(1e-12));
    REQUIRE_CLOSE(m.da.data(), kAf, 4, 1e-6, 0.0);
    REQUIRE_CLOSE(m.db.data(), kBf, 3, 1e-6, 0.0);
    CHECK(global_grad_norm(params) == Approx(2.0).epsilon(1e-6));
  }
  {
    toy<double> m;
    const auto params = m.params();
    CHECK(clip_grad_norm(params, 2.0, backend::reference{}) == Approx(kNorm).epsilon(1e-14));
    REQUIRE_CLOSE(m.da.data(), kAd, 4, 1e-14, 0.0);
    REQUIRE_CLOSE(m.db.data(), kBd, 3, 1e-14, 0.0);
  }
}

TEST_CASE("clip_grad_norm: leaves gradients alone below max_norm", "[train][grad_clip]") {
  toy<float> m;
  const auto params = m.params();
  const toy<float> before;
  CHECK(clip_grad_norm(params, 10.0) == Approx(kNorm).epsilon(1e-12));
  CHECK(m.da == before.da);
  CHECK(m.db == before.db);
  CHECK(global_grad_norm(param_list<float>{}) == 0.0);
  REQUIRE_THROWS_WITH(clip_grad_norm(params, 0.0), contains("max_norm must be positive and finite"));
  REQUIRE_THROWS_AS(clip_grad_norm(params, std::nan("")), attnres::config_error);
}

TEST_CASE("global_grad_norm: deterministic", "[train][grad_clip]") {
  attnres::rng gen(3);
  auto x = attnres_test::random_tensor<float>({1001}, gen), dx = attnres_test::random_tensor<float>({1001}, gen);
  auto y = attnres_test::random_tensor<float>({77, 13}, gen), dy = attnres_test::random_tensor<float>({77, 13}, gen);
  const param_list<float> params{{"x", {1001}, x.data(), dx.data(), true}, {"y", {77, 13}, y.data(), dy.data(), true}};
  const double n1 = global_grad_norm(params);
  for (int i = 0; i < 5; ++i) CHECK(global_grad_norm(params) == n1);
  double sq = 0;
  for (float v : dx) sq += double(v) * v;
  for (float v : dy) sq += double(v) * v;
  CHECK(n1 == Approx(std::sqrt(sq)).epsilon(1e-12));
}

TEST_CASE("global_grad_norm: a NaN or Inf gradient is a numeric_error naming the parameter", "[train][grad_clip]") {
  toy<float> m;
  const auto params = m.params();
  m.db[1] = std::numeric_limits<float>::quiet_NaN();
  REQUIRE_THROWS_AS(global_grad_norm(params), attnres::numeric_error);
  REQUIRE_THROWS_WITH(global_grad_norm(params),
                      contains("gradient norm is not finite (NaN or Inf in a gradient: b)"));
  m.da[0] = std::numeric_limits<float>::infinity();
  REQUIRE_THROWS_WITH(clip_grad_norm(params, 1.0), contains("NaN or Inf in a gradient: a)"));
  CHECK(m.db[0] == 0.5f);  // nothing was scaled
}
