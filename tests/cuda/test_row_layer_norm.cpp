// The LayerNorm row math of the CUDA kernels (ops/cuda/row/layer_norm.hpp), run on the CPU over
// every row and every channel exactly as the kernels run it over threads, against the reference op.

#include "test_util.hpp"

#include <attnres/ops/cuda/row/layer_norm.hpp>
#include <attnres/ops/layer_norm.hpp>

using namespace attnres_test;
namespace ops = attnres::ops;
namespace row = attnres::ops::row;
namespace backend = attnres::backend;
using attnres::tensor;

TEST_CASE("cuda row math: LayerNorm forward and backward equal the reference", "[cuda][row][layer_norm]") {
  const auto M = GENERATE(index_t(1), index_t(5));
  const auto D = GENERATE(index_t(1), index_t(7), index_t(13), index_t(33));
  const bool with_bias = GENERATE(true, false);
  CAPTURE(M, D, with_bias);
  attnres::rng gen(61 + M * 7 + D);
  const auto x = random_tensor<float>({M, D}, gen, 0.3, 2.0);
  const auto g = random_tensor<float>({D}, gen, 1.0, 0.3);
  const auto b = random_tensor<float>({D}, gen, 0.0, 0.5);
  const auto dy = random_tensor<float>({M, D}, gen);
  const float* bias = with_bias ? b.data() : nullptr;
  tensor<float> y1({M, D}), y2({M, D}), mu1({M}), mu2({M}), s1({M}), s2({M});
  ops::layer_norm_forward(backend::reference{}, x.mat(), g.data(), bias, 1e-5f, y1.mat(), mu1.data(), s1.data());
  for (index_t t = 0; t < M; ++t)
    row::layer_norm_forward_row(x.mat().row(t), g.data(), bias, 1e-5f, D, y2.mat().row(t), &mu2[t], &s2[t]);
  if (D > 1) REQUIRE_CLOSE(y1.data(), y2.data(), y1.size(), 1e-5, 1e-6);  // D = 1 normalises to exactly 0
  REQUIRE_CLOSE(mu1.data(), mu2.data(), M, 1e-6, 1e-7);
  REQUIRE_CLOSE(s1.data(), s2.data(), M, 1e-6, 0.0);

  // backward accumulates: start both from the same non-zero values
  const auto dx0 = random_tensor<float>({M, D}, gen);
  tensor<float> dx1 = dx0, dx2 = dx0, dg1({D}), dg2({D}), db1({D}), db2({D});
  dg1.fill(0.5f);
  dg2.fill(0.5f);
  db1.fill(-0.25f);
  db2.fill(-0.25f);
  ops::layer_norm_backward(backend::reference{}, x.mat(), g.data(), mu1.data(), s1.data(), dy.mat(), dx1.mat(),
                           dg1.data(), db1.data());
  for (index_t t = 0; t < M; ++t)
    row::layer_norm_backward_row(x.mat().row(t), g.data(), mu1[t], s1[t], dy.mat().row(t), D, dx2.mat().row(t));
  for (index_t d = 0; d < D; ++d)
    row::layer_norm_backward_channel(x.data(), D, mu1.data(), s1.data(), dy.data(), D, M, d, dg2.data(), db2.data());
  REQUIRE_CLOSE(dx1.data(), dx2.data(), dx1.size(), 1e-4, 1e-6);
  REQUIRE_CLOSE(dg1.data(), dg2.data(), D, 1e-5, 1e-6);
  REQUIRE_CLOSE(db1.data(), db2.data(), D, 1e-5, 1e-6);
}

TEST_CASE("cuda row math: LayerNorm on strided views reads the right rows", "[cuda][row][layer_norm]") {
  // the kernels address row t as x + t·stride: pad each row and check against the packed result
  const index_t M = 4, D = 13, S = D + 3;
  attnres::rng gen(71);
  const auto x = random_tensor<float>({M, D}, gen, 0.1, 1.5);
  const auto g = random_tensor<float>({D}, gen, 1.0, 0.3);
  tensor<float> xs({M, S}), ys({M, S}), y1({M, D}), mu({M}), s({M});
  for (index_t t = 0; t < M; ++t)
    for (index_t d = 0; d < D; ++d) xs[t * S + d] = x[t * D + d];
  ops::layer_norm_forward(backend::reference{}, x.mat(), g.data(), nullptr, 1e-5f, y1.mat(), mu.data(), s.data());
  for (index_t t = 0; t < M; ++t)
    row::layer_norm_forward_row(xs.data() + t * S, g.data(), static_cast<const float*>(nullptr), 1e-5f, D,
                                ys.data() + t * S, static_cast<float*>(nullptr), static_cast<float*>(nullptr));
  tensor<float> y2({M, D});
  for (index_t t = 0; t < M; ++t)
    for (index_t d = 0; d < D; ++d) y2[t * D + d] = ys[t * S + d];
  REQUIRE_CLOSE(y1.data(), y2.data(), y1.size(), 1e-6, 1e-7);
}
