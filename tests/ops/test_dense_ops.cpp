// The dense ops of a transformer layer (linear, rms_norm, layer_norm, activation, embedding,
// cross_entropy, adamw), each tested four ways:
//   (a) the reference backward against central differences, in double;
//   (b) the cpu path against the reference in float, on awkward sizes and strided views;
//   (c) literal numbers from PyTorch (rms_norm, activations, cross_entropy, adamw);
//   (d) the error messages of out-of-range tokens and targets.

#include "test_util.hpp"

#include <attnres/ops/activation.hpp>
#include <attnres/ops/adamw.hpp>
#include <attnres/ops/cross_entropy.hpp>
#include <attnres/ops/embedding.hpp>
#include <attnres/ops/layer_norm.hpp>
#include <attnres/ops/linear.hpp>
#include <attnres/ops/rms_norm.hpp>
#include <attnres/testing/gradient_check.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

using namespace attnres_test;
namespace ops = attnres::ops;
namespace backend = attnres::backend;
using attnres::const_matrix_view;
using attnres::matrix_view;
using attnres::tensor;

namespace {

// A (rows, cols) matrix inside a buffer with `pad` extra columns, so every op also runs on
// views whose stride exceeds their width. The padding holds a sentinel that must survive.
template <class T>
struct strided {
  static constexpr T sentinel = T(-12345);
  index_t rows, cols, stride;
  tensor<T> buf;

  strided(index_t r, index_t c, index_t pad = 3) : rows(r), cols(c), stride(c + pad), buf({r, c + pad}) {
    buf.fill(sentinel);
  }
  strided(index_t r, index_t c, attnres::rng& gen, double mean = 0.0, double sd = 1.0) : strided(r, c) {
    for (index_t i = 0; i < r; ++i)
      for (index_t j = 0; j < c; ++j) (*this)(i, j) = static_cast<T>(mean + sd * gen.normal());
  }

  matrix_view<T> v() { return {buf.data(), rows, cols, stride}; }
  const_matrix_view<T> cv() const { return {buf.data(), rows, cols, stride}; }
  T& operator()(index_t i, index_t j) { return buf[i * stride + j]; }
  T operator()(index_t i, index_t j) const { return buf[i * stride + j]; }

  std::vector<T> dense() const {
    std::vector<T> out;
    for (index_t i = 0; i < rows; ++i)
      for (index_t j = 0; j < cols; ++j) out.push_back((*this)(i, j));
    return out;
  }
  bool padding_intact() const {
    for (index_t i = 0; i < rows; ++i)
      for (index_t j = cols; j < stride; ++j)
        if (buf[i * stride + j] != sentinel) return false;
    return true;
  }
  double max_abs() const {
    double m = 0;
    for (index_t i = 0; i < rows; ++i)
      for (index_t j = 0; j < cols; ++j) m = std::max(m, std::abs(static_cast<double>((*this)(i, j))));
    return m;
  }
};

template <class T>
void require_close(const strided<T>& a, const strided<T>& b, double rtol, double atol) {
  REQUIRE(a.padding_intact());
  REQUIRE(b.padding_intact());
  const std::vector<T> da = a.dense(), db = b.dense();
  REQUIRE_CLOSE(da.data(), db.data(), static_cast<index_t>(da.size()), rtol, atol);
}

template <class T>
std::vector<T> random_vector(index_t n, attnres::rng& gen, double mean = 0.0, double sd = 1.0) {
  std::vector<T> v(static_cast<std::size_t>(n));
  for (T& x : v) x = static_cast<T>(mean + sd * gen.normal());
  return v;
}

template <class T>
double max_abs(const std::vector<T>& v) {
  double m = 0;
  for (T x : v) m = std::max(m, std::abs(static_cast<double>(x)));
  return m;
}

// Σ_i a_i b_i: the scalar loss Σ R ⊙ y whose gradient with respect to y is R.
double dot(const tensor<double>& a, const tensor<double>& b) {
  double s = 0;
  for (index_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// a − b: what an accumulating backward added on top of its initial value b.
tensor<double> minus(tensor<double> a, const tensor<double>& b) {
  for (index_t i = 0; i < a.size(); ++i) a[i] -= b[i];
  return a;
}

// The analytic gradient of loss() with respect to x equals its central differences.
template <class F>
void require_gradient(const char* what, const tensor<double>& analytic, tensor<double>& x, F&& loss,
                      double rtol = 1e-6, double atol = 1e-8) {
  const tensor<double> numeric = attnres::testing::numeric_gradient(loss, x);
  const auto report = attnres::testing::compare_gradients(analytic, numeric, rtol, atol);
  INFO(report.describe(what));
  REQUIRE(report.ok);
  REQUIRE(report.norm > 0);
}

// expr throws E, and the message satisfies the matcher
#define CHECK_THROWS_CONTAINING(expr, E, matcher) \
  do {                                        \
    CHECK_THROWS_AS(expr, E);                 \
    CHECK_THROWS_WITH(expr, matcher);         \
  } while (0)

std::vector<std::int32_t> random_tokens(index_t M, index_t V, attnres::rng& gen) {
  std::vector<std::int32_t> t(static_cast<std::size_t>(M));
  for (auto& x : t) x = static_cast<std::int32_t>(gen.below(static_cast<std::uint64_t>(V)));
  return t;
}

}  // namespace

// ============================================================================ linear

TEST_CASE("linear: reference backward matches central differences", "[ops][linear][grad]") {
  attnres::rng gen(11);
  const index_t M = 3, K = 5, N = 7;
  auto x = random_tensor<double>({M, K}, gen), W = random_tensor<double>({N, K}, gen);
  const auto R = random_tensor<double>({M, N}, gen);
  auto loss = [&] {
    tensor<double> y({M, N});
    ops::linear_forward(backend::reference{}, x.mat(), W.mat(), y.mat());
    return dot(y, R);
  };
  // Both gradients accumulate: start them from random values and subtract those afterwards.
  const auto dx0 = random_tensor<double>({M, K}, gen), dW0 = random_tensor<double>({N, K}, gen);
  auto dx = dx0, dW = dW0;
  ops::linear_backward(backend::reference{}, x.mat(), W.mat(), R.mat(), dx.mat(), dW.mat());
  require_gradient("dx", minus(dx, dx0), x, loss);
  require_gradient("dW", minus(dW, dW0), W, loss);
}

namespace {
void linear_cpu_matches_reference(index_t M, index_t K, index_t N) {
  CAPTURE(M, K, N);
  attnres::rng gen(static_cast<std::uint64_t>(100 + M * 10000 + K * 100 + N));
  const strided<float> x(M, K, gen), W(N, K, gen), dy(M, N, gen);
  // float sums of K (or N, or M) products of unit normals
  const auto atol = [](index_t terms) { return 2e-6 * static_cast<double>(terms); };

  strided<float> y1(M, N), y2(M, N);
  ops::linear_forward(backend::reference{}, x.cv(), W.cv(), y1.v());
  ops::linear_forward(backend::cpu{}, x.cv(), W.cv(), y2.v());
  require_close(y1, y2, 1e-5, atol(K));

  const strided<float> dx0(M, K, gen), dW0(N, K, gen);
  strided<float> dx1 = dx0, dx2 = dx0, dW1 = dW0, dW2 = dW0;
  ops::linear_backward(backend::reference{}, x.cv(), W.cv(), dy.cv(), dx1.v(), dW1.v());
  ops::linear_backward(backend::cpu{}, x.cv(), W.cv(), dy.cv(), dx2.v(), dW2.v());
  require_close(dx1, dx2, 1e-5, atol(N));
  require_close(dW1, dW2, 1e-5, atol(M));

  // a null gradient is skipped, the other one is still computed
  strided<float> dx3 = dx0, dW3 = dW0;
  ops::linear_backward(backend::cpu{}, x.cv(), W.cv(), dy.cv(), dx3.v(), {});
  ops::linear_backward(backend::cpu{}, x.cv(), W.cv(), dy.cv(), {}, dW3.v());
  REQUIRE(dx3.dense() == dx2.dense());
  REQUIRE(dW3.dense() == dW2.dense());
}
}  // namespace

TEST_CASE("linear: cpu equals reference on awkward sizes and strided views", "[ops][linear][cpu]") {
  const auto M = GENERATE(index_t(1), index_t(3), index_t(37));
  const auto K = GENERATE(index_t(1), index_t(7), index_t(33), index_t(67));
  const auto N = GENERATE(index_t(1), index_t(7), index_t(33), index_t(67));
  linear_cpu_matches_reference(M, K, N);
}

TEST_CASE("linear: matrix-vector and GEMM paths on sizes that split over threads", "[ops][linear][cpu]") {
  // M ≤ 4 takes the per-row matrix-vector path (parallel over blocks of W), larger M the GEMM.
  const auto M = GENERATE(index_t(2), index_t(4), index_t(5), index_t(64));
  linear_cpu_matches_reference(M, 129, 513);
}

TEST_CASE("linear: the matrix-vector path's row requests ahead do not change a bit", "[ops][linear][cpu]") {
  // gemv_prefetch_groups only asks the caches for rows (within each thread's range); the
  // products must be the same bits at every distance, including past the end of a range
  namespace ld = ops::linear_detail;
  const index_t saved = ld::gemv_prefetch_groups;
  const auto M = GENERATE(index_t(1), index_t(3), index_t(4));
  CAPTURE(M);
  attnres::rng gen(static_cast<std::uint64_t>(77 + M));
  const strided<float> x(M, 37, gen), W(299, 37, gen);
  strided<float> y_off(M, 299), y_on(M, 299);
  ld::gemv_prefetch_groups = 0;
  ops::linear_forward(backend::cpu{}, x.cv(), W.cv(), y_off.v());
  for (const index_t groups : {index_t(1), index_t(2), index_t(7), index_t(200)}) {
    CAPTURE(groups);
    ld::gemv_prefetch_groups = groups;
    ops::linear_forward(backend::cpu{}, x.cv(), W.cv(), y_on.v());
    CHECK(y_on.dense() == y_off.dense());
    CHECK(y_on.padding_intact());
  }
  ld::gemv_prefetch_groups = saved;
}

namespace {
// linear_forward_shared_input on the cpu against one reference linear_forward per target: three
// targets of N = 1, 33 and 257 rows read one x, so the threads' split of their 291 rows falls
// inside a target (and, at M ≤ 4, at different points for different K).
template <std::size_t J>
void shared_input_matches_reference(index_t M, index_t K, const std::array<index_t, J>& N) {
  CAPTURE(M, K, J);
  attnres::rng gen(static_cast<std::uint64_t>(300 + M * 1000 + K * 10 + J));
  const strided<float> x(M, K, gen);
  std::vector<strided<float>> W, y_ref, y_cpu;
  for (std::size_t j = 0; j < J; ++j) {
    W.emplace_back(N[j], K, gen);
    y_ref.emplace_back(M, N[j]);
    y_cpu.emplace_back(M, N[j]);
    ops::linear_forward(backend::reference{}, x.cv(), W[j].cv(), y_ref[j].v());
  }
  std::array<ops::linear_target<float>, J> targets;
  for (std::size_t j = 0; j < J; ++j) targets[j] = {W[j].cv(), y_cpu[j].v()};
  ops::linear_forward_shared_input(backend::cpu{}, x.cv(), targets);
  for (std::size_t j = 0; j < J; ++j) {
    if (K == 0) {  // empty sums: every output is exactly 0, the padding untouched
      REQUIRE(y_cpu[j].padding_intact());
      REQUIRE(y_cpu[j].dense() == std::vector<float>(static_cast<std::size_t>(M * N[j]), 0.0f));
    } else {
      require_close(y_ref[j], y_cpu[j], 1e-5, 2e-6 * static_cast<double>(K));
    }
  }
  // the reference overload (one linear_forward per target) gives the reference's numbers
  for (std::size_t j = 0; j < J; ++j) targets[j].y = y_cpu[j].v();
  ops::linear_forward_shared_input(backend::reference{}, x.cv(), targets);
  for (std::size_t j = 0; j < J; ++j) REQUIRE(y_cpu[j].dense() == y_ref[j].dense());
}
}  // namespace

TEST_CASE("linear_forward_shared_input: cpu equals one reference linear_forward per target", "[ops][linear][cpu]") {
  // M ≤ 4: one parallel region over all targets' rows; M = 5, 37: a GEMM per target.
  const auto M = GENERATE(index_t(1), index_t(3), index_t(4), index_t(5), index_t(37));
  const auto K = GENERATE(index_t(0), index_t(1), index_t(7), index_t(129));
  shared_input_matches_reference<3>(M, K, {1, 33, 257});
  shared_input_matches_reference<2>(M, K, {257, 19});
  shared_input_matches_reference<1>(M, K, {513});
}

TEST_CASE("linear_forward_shared_input: a target of the wrong shape is named", "[ops][linear][error]") {
  tensor<float> x({2, 4}), W1({5, 4}), y1({2, 5}), W2({3, 6}), y2({2, 3}), W3({3, 4}), y3({2, 4});
  using target = ops::linear_target<float>;
  CHECK_THROWS_CONTAINING(
      ops::linear_forward_shared_input(backend::cpu{}, x.mat(), std::array{target{W1.mat(), y1.mat()}, target{W2.mat(), y2.mat()}}),
      attnres::shape_error, contains("linear_forward: x is (2,4) but W is (3,6)"));
  CHECK_THROWS_CONTAINING(
      ops::linear_forward_shared_input(backend::cpu{}, x.mat(), std::array{target{W1.mat(), y1.mat()}, target{W3.mat(), y3.mat()}}),
      attnres::shape_error, contains("y is (2,4) but x Wᵀ is (2,3)"));
}

TEST_CASE("linear: shape errors name the mismatch", "[ops][linear][error]") {
  tensor<float> x({3, 4}), W({5, 6}), y({3, 5});
  CHECK_THROWS_CONTAINING(ops::linear_forward(backend::cpu{}, x.mat(), W.mat(), y.mat()), attnres::shape_error,
                       contains("linear_forward: x is (3,4) but W is (5,6)"));
  tensor<float> W2({5, 4}), y2({3, 4});
  CHECK_THROWS_CONTAINING(ops::linear_forward(backend::reference{}, x.mat(), W2.mat(), y2.mat()), attnres::shape_error,
                       contains("y is (3,4) but x Wᵀ is (3,5)"));
}

// ---- linear with bf16 weights (decoding; core/bf16.hpp) ---------------------------------------
namespace {
using attnres::bf16;
// W (N,K) rounded to bf16 in a strided buffer, and the float values of those bf16 numbers
struct bf16_weights {
  index_t rows, cols, stride;
  tensor<bf16> buf;
  strided<float> as_float;
  explicit bf16_weights(const strided<float>& W)
      : rows(W.rows), cols(W.cols), stride(W.cols + 5), buf({W.rows, W.cols + 5}), as_float(W.rows, W.cols) {
    for (index_t i = 0; i < rows; ++i)
      for (index_t j = 0; j < cols; ++j) {
        buf[i * stride + j] = bf16(W(i, j));
        as_float(i, j) = static_cast<float>(buf[i * stride + j]);
      }
  }
  attnres::const_matrix_view<bf16> cv() const { return {buf.data(), rows, cols, stride}; }
};
}  // namespace

TEST_CASE("linear with bf16 weights: cpu equals reference, and the float product with the rounded weights",
          "[ops][linear][cpu][bf16]") {
  // every M takes the matrix-vector path with bf16 weights (no bf16 GEMM); K around the 8- and
  // 16-float registers, N that splits inside a thread's 4-row groups
  const auto M = GENERATE(index_t(1), index_t(3), index_t(4), index_t(5), index_t(37));
  const auto K = GENERATE(index_t(0), index_t(1), index_t(7), index_t(17), index_t(129));
  const auto N = GENERATE(index_t(1), index_t(5), index_t(67));
  CAPTURE(M, K, N);
  attnres::rng gen(static_cast<std::uint64_t>(500 + M * 10000 + K * 100 + N));
  const strided<float> x(M, K, gen), W(N, K, gen);
  const bf16_weights Wb(W);
  strided<float> y_float(M, N), y_ref(M, N), y_cpu(M, N);
  ops::linear_forward(backend::reference{}, x.cv(), Wb.as_float.cv(), y_float.v());
  ops::linear_forward(backend::reference{}, x.cv(), Wb.cv(), y_ref.v());
  ops::linear_forward(backend::cpu{}, x.cv(), Wb.cv(), y_cpu.v());
  if (K == 0) {
    REQUIRE(y_ref.dense() == std::vector<float>(static_cast<std::size_t>(M * N), 0.0f));
    REQUIRE(y_cpu.padding_intact());
    REQUIRE(y_cpu.dense() == std::vector<float>(static_cast<std::size_t>(M * N), 0.0f));
  } else {
    // the same loop over the same values (only where the compiler fuses a multiply-add may differ)
    require_close(y_float, y_ref, 1e-6, 1e-7 * static_cast<double>(K));
    require_close(y_ref, y_cpu, 1e-5, 2e-6 * static_cast<double>(K));
  }
}

TEST_CASE("linear_forward_shared_input with bf16 weights equals one linear_forward per target",
          "[ops][linear][cpu][bf16]") {
  const auto M = GENERATE(index_t(1), index_t(4), index_t(5));
  const auto K = GENERATE(index_t(7), index_t(129));
  CAPTURE(M, K);
  attnres::rng gen(static_cast<std::uint64_t>(900 + M * 1000 + K));
  const strided<float> x(M, K, gen);
  const std::array<index_t, 3> N{1, 33, 257};
  std::vector<strided<float>> W, y_one, y_shared, y_ref;
  std::vector<bf16_weights> Wb;
  for (index_t n : N) {
    W.emplace_back(n, K, gen);
    Wb.emplace_back(W.back());
    y_one.emplace_back(M, n);
    y_shared.emplace_back(M, n);
    y_ref.emplace_back(M, n);
  }
  using target = ops::linear_target<float, attnres::host_space, bf16>;
  std::array<target, 3> targets, ref_targets;
  for (std::size_t j = 0; j < 3; ++j) {
    ops::linear_forward(backend::cpu{}, x.cv(), Wb[j].cv(), y_one[j].v());
    targets[j] = {Wb[j].cv(), y_shared[j].v()};
    ref_targets[j] = {Wb[j].cv(), y_ref[j].v()};
  }
  ops::linear_forward_shared_input(backend::cpu{}, x.cv(), targets);
  ops::linear_forward_shared_input(backend::reference{}, x.cv(), ref_targets);
  for (std::size_t j = 0; j < 3; ++j) {
    REQUIRE(y_shared[j].padding_intact());
    REQUIRE(y_shared[j].dense() == y_one[j].dense());  // the same kernel on the same rows
    require_close(y_ref[j], y_shared[j], 1e-5, 2e-6 * static_cast<double>(K));
  }
}

TEST_CASE("linear with bf16 weights: shape errors name the mismatch", "[ops][linear][error][bf16]") {
  tensor<float> x({3, 4}), y({3, 5}), y_bad({3, 4});
  tensor<bf16> W({5, 6}), W2({5, 4});
  for (auto check : {+[](tensor<float>& x, tensor<bf16>& W, tensor<float>& y) {
                       ops::linear_forward(backend::cpu{}, x.mat(), W.mat(), y.mat());
                     },
                     +[](tensor<float>& x, tensor<bf16>& W, tensor<float>& y) {
                       ops::linear_forward(backend::reference{}, x.mat(), W.mat(), y.mat());
                     }}) {
    CHECK_THROWS_CONTAINING(check(x, W, y), attnres::shape_error, contains("linear_forward: x is (3,4) but W is (5,6)"));
    CHECK_THROWS_CONTAINING(check(x, W2, y_bad), attnres::shape_error, contains("y is (3,4) but x Wᵀ is (3,5)"));
  }
}

// ============================================================================ rms_norm

TEST_CASE("rms_norm: literal numbers from PyTorch", "[ops][rms_norm]") {
  // /usr/bin/python3 -c "import torch; d=torch.float64
  //   x=torch.tensor([[3.,4.,0.],[1.,-2.,0.5]],dtype=d,requires_grad=True)
  //   g=torch.tensor([1.,2.,-0.5],dtype=d,requires_grad=True)
  //   inv=torch.rsqrt(x.pow(2).mean(-1,keepdim=True)+1e-5); y=x*inv*g
  //   y.backward(torch.tensor([[1.,-1.,2.],[0.5,0.25,-1.]],dtype=d)); print(inv, y, x.grad, g.grad)"
  const double expect_inv[2] = {0.3464099536678656, 0.7559267862307221};
  const double expect_y[6] = {1.0392298610035968, 2.7712796293429247, 0.0,
                              0.7559267862307221, -3.0237071449228883, -0.18898169655768052};
  const double expect_dx[6] = {0.5542556764537175, -0.4156922769545952, -0.3464099536678656,
                               0.4139597010522072, 0.30597077724166866, 0.3959615470837841};
  const double expect_dg[3] = {1.4171932541189578, -1.7636032077868233, -0.37796339311536103};
  auto run = [&](auto be, auto zero) {
    using T = decltype(zero);
    const double tol = std::is_same_v<T, float> ? 1e-6 : 1e-13;
    tensor<T> x({2, 3}), dy({2, 3}), y({2, 3}), dx({2, 3}), inv({2}), g({3}), dg({3});
    const T xs[6] = {3, 4, 0, 1, -2, 0.5}, dys[6] = {1, -1, 2, 0.5, 0.25, -1}, gs[3] = {1, 2, -0.5};
    std::copy(xs, xs + 6, x.data());
    std::copy(dys, dys + 6, dy.data());
    std::copy(gs, gs + 3, g.data());
    ops::rms_norm_forward(be, x.mat(), g.data(), 1e-5, y.mat(), inv.data());
    ops::rms_norm_backward(be, x.mat(), g.data(), inv.data(), dy.mat(), dx.mat(), dg.data());
    REQUIRE_CLOSE(inv.data(), expect_inv, 2, tol, tol);
    REQUIRE_CLOSE(y.data(), expect_y, 6, tol, tol);
    REQUIRE_CLOSE(dx.data(), expect_dx, 6, tol, tol);
    REQUIRE_CLOSE(dg.data(), expect_dg, 3, tol, tol);
  };
  SECTION("reference, double") { run(backend::reference{}, 0.0); }
  SECTION("cpu, double") { run(backend::cpu{}, 0.0); }
  SECTION("reference, float") { run(backend::reference{}, 0.0f); }
  SECTION("cpu, float") { run(backend::cpu{}, 0.0f); }
}

TEST_CASE("rms_norm: reference backward matches central differences", "[ops][rms_norm][grad]") {
  attnres::rng gen(12);
  const index_t M = 3, D = 5;
  const double eps = 1e-5;
  auto x = random_tensor<double>({M, D}, gen, 0.3, 1.0), g = random_tensor<double>({D}, gen, 1.0, 0.5);
  const auto R = random_tensor<double>({M, D}, gen);
  auto loss = [&] {
    tensor<double> y({M, D}), inv({M});
    ops::rms_norm_forward(backend::reference{}, x.mat(), g.data(), eps, y.mat(), inv.data());
    return dot(y, R);
  };
  tensor<double> y({M, D}), inv({M});
  ops::rms_norm_forward(backend::reference{}, x.mat(), g.data(), eps, y.mat(), inv.data());
  const auto dx0 = random_tensor<double>({M, D}, gen), dg0 = random_tensor<double>({D}, gen);
  auto dx = dx0, dg = dg0;
  ops::rms_norm_backward(backend::reference{}, x.mat(), g.data(), inv.data(), R.mat(), dx.mat(), dg.data());
  require_gradient("dx", minus(dx, dx0), x, loss);
  require_gradient("dg", minus(dg, dg0), g, loss);

  SECTION("x·dx: the dot of x with what the call adds to dx, ≈ ε r³ a (scale invariance up to ε)") {
    tensor<double> inc({M, D}), x_dot_dx({M});
    ops::rms_norm_backward(backend::reference{}, x.mat(), g.data(), inv.data(), R.mat(), inc.mat(), nullptr,
                           x_dot_dx.data());
    for (index_t t = 0; t < M; ++t) {
      double plain = 0, a = 0;
      for (index_t d = 0; d < D; ++d) plain += x.mat()(t, d) * inc.mat()(t, d), a += R.mat()(t, d) * g[d] * x.mat()(t, d);
      const double r = inv[t];
      CHECK(x_dot_dx[t] == Approx(plain).margin(1e-15));
      CHECK(x_dot_dx[t] == Approx(eps * r * r * r * a).epsilon(1e-8));
      CHECK(std::abs(x_dot_dx[t]) < 1e-3 * std::abs(r * a));  // nearly orthogonal: ε r² ≪ 1
    }
  }
}

TEST_CASE("rms_norm: cpu equals reference on awkward sizes and strided views", "[ops][rms_norm][cpu]") {
  const auto M = GENERATE(index_t(1), index_t(3), index_t(37), index_t(300));
  const auto D = GENERATE(index_t(1), index_t(7), index_t(33), index_t(67));
  CAPTURE(M, D);
  attnres::rng gen(static_cast<std::uint64_t>(200 + M * 100 + D));
  const strided<float> x(M, D, gen, 0.2, 1.5), dy(M, D, gen);
  const auto g = random_vector<float>(D, gen, 1.0, 0.5);
  const float eps = 1e-6f;

  strided<float> y1(M, D), y2(M, D);
  std::vector<float> r1(static_cast<std::size_t>(M)), r2(r1.size());
  ops::rms_norm_forward(backend::reference{}, x.cv(), g.data(), eps, y1.v(), r1.data());
  ops::rms_norm_forward(backend::cpu{}, x.cv(), g.data(), eps, y2.v(), r2.data());
  REQUIRE_CLOSE(r1.data(), r2.data(), M, 1e-5, 0.0);
  require_close(y1, y2, 1e-5, 1e-6);

  SECTION("in place") {
    strided<float> y3 = x;
    ops::rms_norm_forward(backend::cpu{}, y3.cv(), g.data(), eps, y3.v(), nullptr);
    REQUIRE(y3.dense() == y2.dense());
  }
  SECTION("backward accumulates") {
    // dx = r g dy − (r³ a / D) x cancels: the error is relative to r·|g|·|dy|, not to dx
    const double scale = max_abs(r1) * max_abs(g) * dy.max_abs();
    const strided<float> dx0(M, D, gen);
    const auto dg0 = random_vector<float>(D, gen);
    strided<float> dx1 = dx0, dx2 = dx0;
    auto dg1 = dg0, dg2 = dg0;
    ops::rms_norm_backward(backend::reference{}, x.cv(), g.data(), r1.data(), dy.cv(), dx1.v(), dg1.data());
    ops::rms_norm_backward(backend::cpu{}, x.cv(), g.data(), r1.data(), dy.cv(), dx2.v(), dg2.data());
    require_close(dx1, dx2, 1e-5, 1e-6 * scale);
    REQUIRE_CLOSE(dg1.data(), dg2.data(), D, 1e-5, 1e-6 * static_cast<double>(M) * scale);

    // deterministic, and a null gradient is skipped
    strided<float> dx3 = dx0;
    auto dg3 = dg0;
    ops::rms_norm_backward(backend::cpu{}, x.cv(), g.data(), r1.data(), dy.cv(), dx3.v(), nullptr);
    ops::rms_norm_backward(backend::cpu{}, x.cv(), g.data(), r1.data(), dy.cv(), {}, dg3.data());
    REQUIRE(dx3.dense() == dx2.dense());
    REQUIRE(dg3 == dg2);
  }
  SECTION("x·dx, with dx and without") {
    // r a − r³ a ‖x‖² / D cancels to ≈ ε r³ a: the error is relative to r·|a|
    double scale = 0;
    for (index_t t = 0; t < M; ++t) {
      double abs_a = 0;
      for (index_t d = 0; d < D; ++d) abs_a += std::abs(double(dy.cv()(t, d)) * g[d] * x.cv()(t, d));
      scale = std::max(scale, double(r1[t]) * abs_a);
    }
    const strided<float> dx0(M, D, gen);
    strided<float> dx1 = dx0, dx2 = dx0;
    std::vector<float> c1(static_cast<std::size_t>(M)), c2(c1.size()), c3(c1.size());
    ops::rms_norm_backward(backend::reference{}, x.cv(), g.data(), r1.data(), dy.cv(), dx1.v(), nullptr, c1.data());
    ops::rms_norm_backward(backend::cpu{}, x.cv(), g.data(), r1.data(), dy.cv(), dx2.v(), nullptr, c2.data());
    ops::rms_norm_backward(backend::cpu{}, x.cv(), g.data(), r1.data(), dy.cv(), {}, nullptr, c3.data());
    REQUIRE_CLOSE(c1.data(), c2.data(), M, 0.0, 1e-5 * scale);
    REQUIRE(c3 == c2);
    // asking for the dot changes nothing else
    strided<float> dx3 = dx0;
    ops::rms_norm_backward(backend::cpu{}, x.cv(), g.data(), r1.data(), dy.cv(), dx3.v(), nullptr);
    REQUIRE(dx3.dense() == dx2.dense());
  }
}

// ============================================================================ layer_norm

TEST_CASE("layer_norm: reference backward matches central differences", "[ops][layer_norm][grad]") {
  attnres::rng gen(13);
  const index_t M = 3, D = 5;
  const double eps = 1e-5;
  auto x = random_tensor<double>({M, D}, gen, 0.3, 1.0), g = random_tensor<double>({D}, gen, 1.0, 0.5),
       b = random_tensor<double>({D}, gen);
  const auto R = random_tensor<double>({M, D}, gen);
  auto loss = [&] {
    tensor<double> y({M, D});
    ops::layer_norm_forward(backend::reference{}, x.mat(), g.data(), b.data(), eps, y.mat(), nullptr, nullptr);
    return dot(y, R);
  };
  tensor<double> y({M, D}), mean({M}), rstd({M});
  ops::layer_norm_forward(backend::reference{}, x.mat(), g.data(), b.data(), eps, y.mat(), mean.data(), rstd.data());
  const auto dx0 = random_tensor<double>({M, D}, gen), dg0 = random_tensor<double>({D}, gen),
             db0 = random_tensor<double>({D}, gen);
  auto dx = dx0, dg = dg0, db = db0;
  ops::layer_norm_backward(backend::reference{}, x.mat(), g.data(), mean.data(), rstd.data(), R.mat(), dx.mat(),
                           dg.data(), db.data());
  require_gradient("dx", minus(dx, dx0), x, loss);
  require_gradient("dg", minus(dg, dg0), g, loss);
  require_gradient("db", minus(db, db0), b, loss);
}

TEST_CASE("layer_norm: cpu equals reference on awkward sizes and strided views", "[ops][layer_norm][cpu]") {
  const auto M = GENERATE(index_t(1), index_t(3), index_t(37), index_t(300));
  const auto D = GENERATE(index_t(1), index_t(7), index_t(33), index_t(67));
  const bool bias = GENERATE(false, true);
  CAPTURE(M, D, bias);
  attnres::rng gen(static_cast<std::uint64_t>(300 + M * 100 + D));
  const strided<float> x(M, D, gen, 2.0, 1.5), dy(M, D, gen);
  const auto g = random_vector<float>(D, gen, 1.0, 0.5), b = random_vector<float>(D, gen);
  const float* bp = bias ? b.data() : nullptr;
  const float eps = 1e-5f;

  strided<float> y1(M, D), y2(M, D);
  std::vector<float> mu1(static_cast<std::size_t>(M)), mu2(mu1.size()), s1(mu1.size()), s2(mu1.size());
  ops::layer_norm_forward(backend::reference{}, x.cv(), g.data(), bp, eps, y1.v(), mu1.data(), s1.data());
  ops::layer_norm_forward(backend::cpu{}, x.cv(), g.data(), bp, eps, y2.v(), mu2.data(), s2.data());
  REQUIRE_CLOSE(mu1.data(), mu2.data(), M, 1e-5, 1e-6 * x.max_abs());
  REQUIRE_CLOSE(s1.data(), s2.data(), M, 1e-4, 0.0);  // 1/σ amplifies the rounding of σ²
  if (D > 1 || bias) require_close(y1, y2, 1e-4, 1e-5 * max_abs(g) + 1e-6 * max_abs(b));

  // dx is a difference of terms of size s·|g|·|dy|
  const double scale = max_abs(s1) * max_abs(g) * dy.max_abs();
  const strided<float> dx0(M, D, gen);
  const auto dg0 = random_vector<float>(D, gen), db0 = random_vector<float>(D, gen);
  strided<float> dx1 = dx0, dx2 = dx0;
  auto dg1 = dg0, dg2 = dg0, db1 = db0, db2 = db0;
  ops::layer_norm_backward(backend::reference{}, x.cv(), g.data(), mu1.data(), s1.data(), dy.cv(), dx1.v(),
                           dg1.data(), db1.data());
  ops::layer_norm_backward(backend::cpu{}, x.cv(), g.data(), mu1.data(), s1.data(), dy.cv(), dx2.v(), dg2.data(),
                           db2.data());
  require_close(dx1, dx2, 1e-4, 1e-5 * scale);
  const double sum_scale = static_cast<double>(M) * dy.max_abs();
  REQUIRE_CLOSE(dg1.data(), dg2.data(), D, 1e-5, 1e-5 * sum_scale);
  REQUIRE_CLOSE(db1.data(), db2.data(), D, 1e-5, 1e-6 * sum_scale);

  // null gradients are skipped
  auto dg3 = dg0;
  ops::layer_norm_backward(backend::cpu{}, x.cv(), g.data(), mu1.data(), s1.data(), dy.cv(), {}, dg3.data(),
                           nullptr);
  REQUIRE(dg3 == dg2);
}

// ============================================================================ activations

TEST_CASE("activations: literal numbers from PyTorch", "[ops][activation]") {
  // /usr/bin/python3 -c "import torch; d=torch.float64
  //   x=torch.tensor([-3.,-0.5,0.,1.,2.5],dtype=d,requires_grad=True); y=torch.nn.GELU()(x)
  //   y.backward(torch.ones_like(x)); print(y, x.grad)
  //   g=torch.tensor([-2.,0.5,3.],dtype=d,requires_grad=True); u=torch.tensor([1.5,-1.,2.],dtype=d,requires_grad=True)
  //   o=torch.nn.functional.silu(g)*u; o.backward(torch.tensor([1.,2.,-0.5],dtype=d)); print(o, g.grad, u.grad)"
  const double gelu_y[5] = {-0.00404969409489031, -0.15426876936299344, 0.0, 0.841344746068543, 2.4844758366855597};
  const double gelu_dx[5] = {-0.01194564720418392, 0.13250487534383712, 0.5, 1.0833154705876864, 1.037611085908145};
  const double sw_out[3] = {-0.3576087660663526, -0.3112296656009273, 5.7154447609345995};
  const double sw_dgate[3] = {-0.13617637317734319, -1.4799223746053038, -1.0881041060151693};
  const double sw_dup[3] = {-0.2384058440442351, 0.6224593312018546, -1.4288611902336499};
  auto run = [&](auto be, auto zero) {
    using T = decltype(zero);
    const double tol = std::is_same_v<T, float> ? 1e-6 : 1e-13;
    tensor<T> x({1, 5}), ones({1, 5}), y({1, 5}), dx({1, 5});
    const T xs[5] = {-3, -0.5, 0, 1, 2.5};
    std::copy(xs, xs + 5, x.data());
    ones.fill(T(1));
    ops::gelu_forward(be, x.mat(), y.mat());
    ops::gelu_backward(be, x.mat(), ones.mat(), dx.mat());
    REQUIRE_CLOSE(y.data(), gelu_y, 5, tol, tol);
    REQUIRE_CLOSE(dx.data(), gelu_dx, 5, tol, tol);
    tensor<T> gate({1, 3}), up({1, 3}), dout({1, 3}), out({1, 3}), dgate({1, 3}), dup({1, 3});
    const T gs[3] = {-2, 0.5, 3}, us[3] = {1.5, -1, 2}, ds[3] = {1, 2, -0.5};
    std::copy(gs, gs + 3, gate.data());
    std::copy(us, us + 3, up.data());
    std::copy(ds, ds + 3, dout.data());
    ops::swiglu_forward(be, gate.mat(), up.mat(), out.mat());
    ops::swiglu_backward(be, gate.mat(), up.mat(), dout.mat(), dgate.mat(), dup.mat());
    REQUIRE_CLOSE(out.data(), sw_out, 3, tol, tol);
    REQUIRE_CLOSE(dgate.data(), sw_dgate, 3, tol, tol);
    REQUIRE_CLOSE(dup.data(), sw_dup, 3, tol, tol);
  };
  SECTION("reference, double") { run(backend::reference{}, 0.0); }
  SECTION("cpu, double") { run(backend::cpu{}, 0.0); }
  SECTION("reference, float") { run(backend::reference{}, 0.0f); }
  SECTION("cpu, float") { run(backend::cpu{}, 0.0f); }
}

TEST_CASE("activations: reference backward matches central differences", "[ops][activation][grad]") {
  attnres::rng gen(14);
  const index_t M = 3, F = 5;
  const auto R = random_tensor<double>({M, F}, gen);
  SECTION("swiglu") {
    auto gate = random_tensor<double>({M, F}, gen, 0.0, 2.0), up = random_tensor<double>({M, F}, gen);
    auto loss = [&] {
      tensor<double> out({M, F});
      ops::swiglu_forward(backend::reference{}, gate.mat(), up.mat(), out.mat());
      return dot(out, R);
    };
    tensor<double> dgate({M, F}), dup({M, F});
    dgate.fill(99), dup.fill(99);  // overwritten, not accumulated
    ops::swiglu_backward(backend::reference{}, gate.mat(), up.mat(), R.mat(), dgate.mat(), dup.mat());
    require_gradient("dgate", dgate, gate, loss);
    require_gradient("dup", dup, up, loss);
  }
  SECTION("gelu") {
    auto x = random_tensor<double>({M, F}, gen, 0.0, 2.0);
    auto loss = [&] {
      tensor<double> y({M, F});
      ops::gelu_forward(backend::reference{}, x.mat(), y.mat());
      return dot(y, R);
    };
    tensor<double> dx({M, F});
    dx.fill(99);
    ops::gelu_backward(backend::reference{}, x.mat(), R.mat(), dx.mat());
    require_gradient("dx", dx, x, loss);
  }
}

TEST_CASE("activations: cpu equals reference on awkward sizes and strided views", "[ops][activation][cpu]") {
  const auto M = GENERATE(index_t(1), index_t(3), index_t(37));
  const auto F = GENERATE(index_t(1), index_t(7), index_t(33), index_t(67));
  CAPTURE(M, F);
  attnres::rng gen(static_cast<std::uint64_t>(400 + M * 100 + F));
  strided<float> gate(M, F, gen, 0.0, 3.0), up(M, F, gen), dout(M, F, gen);
  if (M * F >= 7) {  // saturated entries: e^{−z} overflows, erf reaches ±1
    gate(0, 0) = 95.0f;
    gate(M - 1, F - 1) = -95.0f;
  }
  const double zmax = std::max(1.0, std::min(gate.max_abs(), 12.0));  // beyond 12 the terms vanish

  SECTION("swiglu") {
    strided<float> o1(M, F), o2(M, F);
    ops::swiglu_forward(backend::reference{}, gate.cv(), up.cv(), o1.v());
    ops::swiglu_forward(backend::cpu{}, gate.cv(), up.cv(), o2.v());
    require_close(o1, o2, 1e-5, 1e-6);
    // d silu = σ(1 + z(1 − σ)) cancels near z ≈ −1.28: tolerance relative to |dout|·|up|·|z|
    const double scale = dout.max_abs() * up.max_abs() * zmax;
    strided<float> dg1(M, F), dg2(M, F), du1(M, F), du2(M, F);
    ops::swiglu_backward(backend::reference{}, gate.cv(), up.cv(), dout.cv(), dg1.v(), du1.v());
    ops::swiglu_backward(backend::cpu{}, gate.cv(), up.cv(), dout.cv(), dg2.v(), du2.v());
    require_close(dg1, dg2, 1e-5, 1e-6 * scale);
    require_close(du1, du2, 1e-5, 1e-6);
  }
  SECTION("gelu") {
    const strided<float>& x = gate;
    strided<float> y1(M, F), y2(M, F);
    ops::gelu_forward(backend::reference{}, x.cv(), y1.v());
    ops::gelu_forward(backend::cpu{}, x.cv(), y2.v());
    require_close(y1, y2, 1e-5, 1e-6);
    // Φ + x φ cancels near x ≈ −0.75
    const double scale = dout.max_abs() * zmax;
    strided<float> dx1(M, F), dx2(M, F);
    ops::gelu_backward(backend::reference{}, x.cv(), dout.cv(), dx1.v());
    ops::gelu_backward(backend::cpu{}, x.cv(), dout.cv(), dx2.v());
    require_close(dx1, dx2, 1e-5, 1e-6 * scale);
  }
}

// ============================================================================ embedding

TEST_CASE("embedding: reference backward matches central differences", "[ops][embedding][grad]") {
  attnres::rng gen(15);
  const index_t V = 5, D = 3;
  const std::vector<std::int32_t> tokens{4, 0, 4, 2, 1, 4, 0};  // repeats collect several gradients
  const index_t M = static_cast<index_t>(tokens.size());
  auto table = random_tensor<double>({V, D}, gen);
  const auto R = random_tensor<double>({M, D}, gen);
  auto loss = [&] {
    tensor<double> out({M, D});
    ops::embedding_forward(backend::reference{}, tokens.data(), M, table.mat(), out.mat());
    return dot(out, R);
  };
  const auto d0 = random_tensor<double>({V, D}, gen);
  auto dtable = d0;
  ops::embedding_backward(backend::reference{}, tokens.data(), M, R.mat(), dtable.mat());
  // token 3 never occurs: its row of the gradient is exactly zero
  require_gradient("dtable", minus(dtable, d0), table, loss);
}

TEST_CASE("embedding: cpu equals reference (bit for bit) on awkward sizes", "[ops][embedding][cpu]") {
  const auto M = GENERATE(index_t(1), index_t(3), index_t(37), index_t(300));
  const auto D = GENERATE(index_t(1), index_t(7), index_t(33), index_t(67), index_t(1000));
  CAPTURE(M, D);
  const index_t V = 11;
  attnres::rng gen(static_cast<std::uint64_t>(500 + M * 10000 + D));
  const auto tokens = random_tokens(M, V, gen);
  const strided<float> table(V, D, gen), dout(M, D, gen), d0(V, D, gen);
  strided<float> o1(M, D), o2(M, D);
  ops::embedding_forward(backend::reference{}, tokens.data(), M, table.cv(), o1.v());
  ops::embedding_forward(backend::cpu{}, tokens.data(), M, table.cv(), o2.v());
  REQUIRE(o1.padding_intact());
  REQUIRE(o2.padding_intact());
  REQUIRE(o1.dense() == o2.dense());
  REQUIRE(o1.max_abs() > 0);
  // the same order of additions per element: identical, not merely close
  strided<float> dt1 = d0, dt2 = d0;
  ops::embedding_backward(backend::reference{}, tokens.data(), M, dout.cv(), dt1.v());
  ops::embedding_backward(backend::cpu{}, tokens.data(), M, dout.cv(), dt2.v());
  REQUIRE(dt2.padding_intact());
  REQUIRE(dt1.dense() == dt2.dense());
  REQUIRE(dt1.dense() != d0.dense());
}

TEST_CASE("embedding: a token outside the vocabulary is named, and nothing is written", "[ops][embedding][error]") {
  tensor<float> table({11, 4}), out({3, 4}), dtable({11, 4});
  out.fill(7.0f);
  const std::vector<std::int32_t> high{1, 2, 11}, low{-1, 0, 0};
  auto forward = [&](auto be, const std::vector<std::int32_t>& t) {
    ops::embedding_forward(be, t.data(), 3, table.mat(), out.mat());
  };
  auto backward = [&](auto be, const std::vector<std::int32_t>& t) {
    ops::embedding_backward(be, t.data(), 3, out.mat(), dtable.mat());
  };
  CHECK_THROWS_CONTAINING(forward(backend::cpu{}, high), attnres::shape_error,
                       contains("embedding: token 11 at position 2 is outside the vocabulary [0, 11)"));
  CHECK_THROWS_CONTAINING(forward(backend::reference{}, low), attnres::shape_error,
                       contains("embedding: token -1 at position 0 is outside the vocabulary [0, 11)"));
  CHECK(std::all_of(out.begin(), out.end(), [](float v) { return v == 7.0f; }));
  CHECK_THROWS_CONTAINING(backward(backend::cpu{}, high), attnres::shape_error,
                       contains("embedding: token 11 at position 2 is outside the vocabulary [0, 11)"));
  CHECK_THROWS_CONTAINING(backward(backend::reference{}, low), attnres::shape_error,
                       contains("token -1 at position 0"));
  CHECK(std::all_of(dtable.begin(), dtable.end(), [](float v) { return v == 0.0f; }));
  tensor<float> narrow({3, 5});
  CHECK_THROWS_CONTAINING(ops::embedding_forward(backend::cpu{}, high.data(), 3, table.mat(), narrow.mat()),
                       attnres::shape_error, contains("out is (3,5) but 3 tokens of a table of width 4 need (3,4)"));
}

// ============================================================================ cross_entropy

TEST_CASE("cross_entropy: literal numbers from PyTorch", "[ops][cross_entropy]") {
  // /usr/bin/python3 -c "import torch; d=torch.float64
  //   z=torch.tensor([[1.,2.,3.],[0.5,-1.,4.]],dtype=d,requires_grad=True)
  //   l=torch.nn.functional.cross_entropy(z,torch.tensor([2,0])); l.backward(); print(l, z.grad)"
  const double expect_loss = 1.97193776478458;
  const double expect_dz[6] = {0.04501528658519022, 0.12236423552739882, -0.1673795221125891,
                               -0.4854391192312608, 0.003248971657830971, 0.4821901475734298};
  const std::int32_t targets[2] = {2, 0};
  auto run = [&](auto be, auto zero) {
    using T = decltype(zero);
    const double tol = std::is_same_v<T, float> ? 1e-6 : 1e-13;
    tensor<T> z({2, 3}), dz({2, 3});
    const T zs[6] = {1, 2, 3, 0.5, -1, 4};
    std::copy(zs, zs + 6, z.data());
    // a mutable view of the logits, and the gradient
    CHECK(ops::cross_entropy(be, z.mat(), targets, dz.mat()) == Approx(expect_loss).epsilon(tol));
    REQUIRE_CLOSE(dz.data(), expect_dz, 6, tol, tol);
    // a const view and no gradient: the loss only
    CHECK(ops::cross_entropy(be, std::as_const(z).mat(), targets, {}) == Approx(expect_loss).epsilon(tol));
    // grad_scale multiplies the gradient (a double literal converts to T)
    ops::cross_entropy(be, z.mat(), targets, dz.mat(), 2.0);
    for (int i = 0; i < 6; ++i) CHECK(dz[i] == Approx(2 * expect_dz[i]).epsilon(tol).margin(tol));
    // in place: the gradient overwrites the logits
    CHECK(ops::cross_entropy(be, z.mat(), targets, z.mat()) == Approx(expect_loss).epsilon(tol));
    REQUIRE_CLOSE(z.data(), expect_dz, 6, tol, tol);
  };
  SECTION("reference, double") { run(backend::reference{}, 0.0); }
  SECTION("cpu, double") { run(backend::cpu{}, 0.0); }
  SECTION("reference, float") { run(backend::reference{}, 0.0f); }
  SECTION("cpu, float") { run(backend::cpu{}, 0.0f); }
}

TEST_CASE("cross_entropy: reference gradient matches central differences", "[ops][cross_entropy][grad]") {
  attnres::rng gen(16);
  const index_t M = 3, V = 5;
  const double scale = 0.7;
  auto z = random_tensor<double>({M, V}, gen, 0.0, 2.0);
  const std::vector<std::int32_t> targets{4, 0, 2};
  auto loss = [&] { return scale * ops::cross_entropy(backend::reference{}, z.mat(), targets.data(), {}); };
  tensor<double> dz({M, V});
  dz.fill(99);  // overwritten
  const double l = ops::cross_entropy(backend::reference{}, z.mat(), targets.data(), dz.mat(), scale);
  CHECK(scale * l == Approx(loss()).epsilon(1e-15));
  require_gradient("dlogits", dz, z, loss);
}

TEST_CASE("softmax_rows: rows sum to one and agree with the cross-entropy gradient", "[ops][cross_entropy]") {
  // softmax has no backward op of its own (sampling only reads it); its values are tied to the
  // gradient-checked cross-entropy by dlogits = softmax − onehot (with grad_scale = M).
  attnres::rng gen(17);
  const index_t M = 4, V = 6;
  const auto z = random_tensor<double>({M, V}, gen, 0.0, 2.0);
  const std::vector<std::int32_t> targets{0, 5, 2, 2};
  tensor<double> p({M, V}), dz({M, V});
  ops::softmax_rows(backend::reference{}, z.mat(), p.mat());
  ops::cross_entropy(backend::reference{}, z.mat(), targets.data(), dz.mat(), double(M));
  for (index_t i = 0; i < M; ++i) {
    double s = 0;
    for (index_t j = 0; j < V; ++j) {
      s += p[i * V + j];
      CHECK(p[i * V + j] - (j == targets[i] ? 1.0 : 0.0) == Approx(dz[i * V + j]).margin(1e-15));
    }
    CHECK(s == Approx(1.0).epsilon(1e-15));
  }
}

TEST_CASE("cross_entropy: cpu equals reference on awkward sizes and strided views", "[ops][cross_entropy][cpu]") {
  const auto M = GENERATE(index_t(1), index_t(3), index_t(37), index_t(300));
  const auto V = GENERATE(index_t(1), index_t(7), index_t(33), index_t(67));
  CAPTURE(M, V);
  attnres::rng gen(static_cast<std::uint64_t>(600 + M * 100 + V));
  // large positive logits: only the max shift keeps e^z finite in float
  const strided<float> z(M, V, gen, 60.0, 4.0);
  const auto targets = random_tokens(M, V, gen);
  const float gscale = 1.5f;
  strided<float> g1(M, V), g2(M, V);
  const double l1 = ops::cross_entropy(backend::reference{}, z.cv(), targets.data(), g1.v(), gscale);
  const double l2 = ops::cross_entropy(backend::cpu{}, z.cv(), targets.data(), g2.v(), gscale);
  REQUIRE(std::isfinite(l1));
  if (V == 1) {  // a single class: zero loss, zero gradient
    CHECK(l1 == 0.0);
    CHECK(l2 == 0.0);
    CHECK(g2.max_abs() == 0.0);
  } else {
    CHECK(l2 == Approx(l1).epsilon(1e-6));
    require_close(g1, g2, 1e-5, 1e-7 * gscale / static_cast<double>(M));
    CHECK(ops::cross_entropy(backend::cpu{}, z.cv(), targets.data(), {}) == l2);
  }
  // softmax
  strided<float> p1(M, V), p2(M, V);
  ops::softmax_rows(backend::reference{}, z.cv(), p1.v());
  ops::softmax_rows(backend::cpu{}, z.cv(), p2.v());
  require_close(p1, p2, 1e-5, 1e-8);
  strided<float> p3 = z;  // in place
  ops::softmax_rows(backend::cpu{}, p3.cv(), p3.v());
  REQUIRE(p3.dense() == p2.dense());
}

TEST_CASE("cross_entropy: a target outside the vocabulary names its row", "[ops][cross_entropy][error]") {
  tensor<float> z({3, 5}), dz({3, 5});
  dz.fill(7.0f);
  const std::vector<std::int32_t> high{0, 5, 1}, low{0, 1, -2};
  CHECK_THROWS_CONTAINING(ops::cross_entropy(backend::cpu{}, z.mat(), high.data(), dz.mat()), attnres::shape_error,
                       contains("cross_entropy: target 5 at row 1 is outside the vocabulary [0, 5)"));
  CHECK_THROWS_CONTAINING(ops::cross_entropy(backend::reference{}, z.mat(), low.data(), {}), attnres::shape_error,
                       contains("cross_entropy: target -2 at row 2 is outside the vocabulary [0, 5)"));
  CHECK(std::all_of(dz.begin(), dz.end(), [](float v) { return v == 7.0f; }));
  tensor<float> wrong({3, 4});
  CHECK_THROWS_CONTAINING(ops::cross_entropy(backend::cpu{}, z.mat(), high.data(), wrong.mat()), attnres::shape_error,
                       contains("dlogits is (3,4) but logits are (3,5)"));
}

// ============================================================================ adamw

TEST_CASE("adamw: two steps equal torch.optim.AdamW", "[ops][adamw]") {
  // /usr/bin/python3 -c "import torch; d=torch.float64
  //   p=torch.tensor([1.,-2.,0.5],dtype=d,requires_grad=True)
  //   opt=torch.optim.AdamW([p],lr=0.1,betas=(0.9,0.999),eps=1e-8,weight_decay=0.1)
  //   for gr in ([0.1,-0.3,2.0],[-0.2,0.4,1.0]):
  //     p.grad=torch.tensor(gr,dtype=d); opt.step(); s=opt.state[p]; print(p, s['exp_avg'], s['exp_avg_sq'])"
  const double expect_p[2][3] = {{0.890000009999999, -1.8800000033333333, 0.3950000005},
                                 {0.9177103602884887, -1.8805510436663575, 0.2978320372035104}};
  const double expect_m[2][3] = {{0.01, -0.03, 0.2}, {-0.011, 0.013, 0.28}};
  const double expect_v[2][3] = {{1e-05, 9e-05, 0.004}, {4.999e-05, 0.00024991, 0.004996}};
  const double grads[2][3] = {{0.1, -0.3, 2.0}, {-0.2, 0.4, 1.0}};
  auto run = [&](auto be, auto zero) {
    using T = decltype(zero);
    const double tol = std::is_same_v<T, float> ? 2e-6 : 1e-12;
    T p[3] = {1, -2, 0.5}, m[3] = {}, v[3] = {};
    for (int s = 0; s < 2; ++s) {
      const T g[3] = {T(grads[s][0]), T(grads[s][1]), T(grads[s][2])};
      ops::adamw_step(be, p, g, m, v, 3,
                      {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.1, .step = s + 1});
      INFO("step " << s + 1);
      REQUIRE_CLOSE(p, expect_p[s], 3, tol, tol);
      REQUIRE_CLOSE(m, expect_m[s], 3, tol, tol);
      REQUIRE_CLOSE(v, expect_v[s], 3, tol, 1e-12);
    }
  };
  SECTION("reference, double") { run(backend::reference{}, 0.0); }
  SECTION("cpu, double") { run(backend::cpu{}, 0.0); }
  SECTION("reference, float") { run(backend::reference{}, 0.0f); }
  SECTION("cpu, float") { run(backend::cpu{}, 0.0f); }
}

TEST_CASE("adamw: cpu equals reference, and the norm helpers", "[ops][adamw][cpu]") {
  const auto n = GENERATE(index_t(1), index_t(7), index_t(33), index_t(67), index_t(100003));
  CAPTURE(n);
  attnres::rng gen(static_cast<std::uint64_t>(700 + n));
  const auto p0 = random_vector<float>(n, gen), m0 = random_vector<float>(n, gen, 0.0, 0.1);
  auto v0 = random_vector<float>(n, gen, 0.0, 0.1);
  for (float& x : v0) x = x * x;  // a second moment is non-negative
  auto p1 = p0, p2 = p0, m1 = m0, m2 = m0, v1 = v0, v2 = v0;
  const ops::adamw_step_args args{.lr = 3e-3, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1, .step = 7};
  for (int s = 0; s < 2; ++s) {
    const auto g = random_vector<float>(n, gen);
    ops::adamw_step(backend::reference{}, p1.data(), g.data(), m1.data(), v1.data(), n, args);
    ops::adamw_step(backend::cpu{}, p2.data(), g.data(), m2.data(), v2.data(), n, args);
  }
  // an element that nearly cancels (p·decay − update, β1 m + (1 − β1) g) keeps the absolute
  // rounding error of the array's largest elements
  REQUIRE_CLOSE(m1.data(), m2.data(), n, 1e-6, 1e-6 * max_abs(m1));
  REQUIRE_CLOSE(v1.data(), v2.data(), n, 1e-6, 1e-6 * max_abs(v1));
  REQUIRE_CLOSE(p1.data(), p2.data(), n, 1e-6, 1e-6 * max_abs(p1));
  REQUIRE(p2 != p0);

  const double ss1 = ops::sum_of_squares(backend::reference{}, p0.data(), n);
  const double ss2 = ops::sum_of_squares(backend::cpu{}, p0.data(), n);
  CHECK(ss2 == Approx(ss1).epsilon(1e-13));  // both exact double sums of squares, in different orders
  auto sc1 = p0, sc2 = p0;
  ops::scale(backend::reference{}, sc1.data(), n, 0.25);
  ops::scale(backend::cpu{}, sc2.data(), n, 0.25);
  REQUIRE(sc1 == sc2);
  CHECK(sc2[0] == p0[0] * 0.25f);
}

TEST_CASE("adamw: the step is 1-based", "[ops][adamw][error]") {
  float p[2] = {1, 2}, g[2] = {0, 0}, m[2] = {}, v[2] = {};
  ops::adamw_step_args a{.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0, .step = 0};
  CHECK_THROWS_CONTAINING(ops::adamw_step(backend::cpu{}, p, g, m, v, 2, a), attnres::usage_error,
                       contains("adamw_step: step is 1-based"));
  CHECK(p[0] == 1.0f);
}
