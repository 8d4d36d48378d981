// The dense-op row math of the CUDA kernels (ops/cuda/row/*.hpp), run on the CPU over every row,
// (row, head) or element exactly as the kernels run it over threads, against the reference ops.

#include "test_util.hpp"

#include <attnres/ops/activation.hpp>
#include <attnres/ops/adamw.hpp>
#include <attnres/ops/attention_decode.hpp>
#include <attnres/ops/causal_attention.hpp>
#include <attnres/ops/cross_entropy.hpp>
#include <attnres/ops/cuda/row/activation.hpp>
#include <attnres/ops/cuda/row/adamw.hpp>
#include <attnres/ops/cuda/row/causal_attention.hpp>
#include <attnres/ops/cuda/row/cross_entropy.hpp>
#include <attnres/ops/cuda/row/embedding.hpp>
#include <attnres/ops/cuda/row/rms_norm.hpp>
#include <attnres/ops/cuda/row/rope.hpp>
#include <attnres/ops/embedding.hpp>
#include <attnres/ops/rms_norm.hpp>
#include <attnres/ops/rope.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

using namespace attnres_test;
namespace ops = attnres::ops;
namespace row = attnres::ops::row;
namespace backend = attnres::backend;
using attnres::tensor;

TEST_CASE("cuda row math: RMSNorm forward and backward equal the reference", "[cuda][row][rms_norm]") {
  const auto M = GENERATE(index_t(1), index_t(5));
  const auto D = GENERATE(index_t(1), index_t(7), index_t(13), index_t(33));
  CAPTURE(M, D);
  attnres::rng gen(31 + M * 7 + D);
  const auto x = random_tensor<float>({M, D}, gen, 0.3, 2.0);
  const auto g = random_tensor<float>({D}, gen, 1.0, 0.3);
  const auto dy = random_tensor<float>({M, D}, gen);
  tensor<float> y1({M, D}), y2({M, D}), r1({M}), r2({M});
  ops::rms_norm_forward(backend::reference{}, x.mat(), g.data(), 1e-6f, y1.mat(), r1.data());
  for (index_t t = 0; t < M; ++t) r2[t] = row::rms_norm_forward_row(x.mat().row(t), g.data(), 1e-6f, D, y2.mat().row(t));
  REQUIRE_CLOSE(y1.data(), y2.data(), y1.size(), 1e-5, 1e-6);
  REQUIRE_CLOSE(r1.data(), r2.data(), M, 1e-6, 0.0);

  // backward accumulates: start both from the same non-zero values
  const auto dx0 = random_tensor<float>({M, D}, gen);
  tensor<float> dx1 = dx0, dx2 = dx0, dg1({D}), dg2({D});
  dg1.fill(0.5f);
  dg2.fill(0.5f);
  ops::rms_norm_backward(backend::reference{}, x.mat(), g.data(), r1.data(), dy.mat(), dx1.mat(), dg1.data());
  for (index_t t = 0; t < M; ++t) row::rms_norm_backward_row(x.mat().row(t), g.data(), r1[t], dy.mat().row(t), D, dx2.mat().row(t));
  for (index_t d = 0; d < D; ++d) row::rms_norm_backward_channel(x.data(), D, r1.data(), dy.data(), D, M, d, dg2.data());
  REQUIRE_CLOSE(dx1.data(), dx2.data(), dx1.size(), 1e-5, 1e-6);
  REQUIRE_CLOSE(dg1.data(), dg2.data(), D, 1e-5, 1e-6);

  // x·(dx's increment), with dx and without (it cancels to ≈ ε r³ a: the error is relative to r·|a|)
  tensor<float> c1({M}), c2({M}), c3({M}), dx3 = dx0;
  ops::rms_norm_backward(backend::reference{}, x.mat(), g.data(), r1.data(), dy.mat(), dx3.mat(), nullptr, c1.data());
  for (index_t t = 0; t < M; ++t) {
    double abs_a = 0;
    for (index_t d = 0; d < D; ++d) abs_a += std::abs(double(dy.mat()(t, d)) * g[d] * x.mat()(t, d));
    tensor<float> dx4 = dx0;
    row::rms_norm_backward_row(x.mat().row(t), g.data(), r1[t], dy.mat().row(t), D, dx4.mat().row(t), &c2[t]);
    row::rms_norm_backward_row(x.mat().row(t), g.data(), r1[t], dy.mat().row(t), D, static_cast<float*>(nullptr), &c3[t]);
    CHECK(c2[t] == Approx(c1[t]).margin(1e-5 * r1[t] * abs_a));
    CHECK(c3[t] == c2[t]);
    REQUIRE(std::equal(dx4.mat().row(t), dx4.mat().row(t) + D, dx2.mat().row(t)));  // the dot changes nothing else
  }
}

TEST_CASE("cuda row math: cross-entropy and softmax rows equal the reference", "[cuda][row][cross_entropy]") {
  const auto M = GENERATE(index_t(1), index_t(6));
  const auto V = GENERATE(index_t(1), index_t(7), index_t(33), index_t(257));
  CAPTURE(M, V);
  attnres::rng gen(41 + M * 3 + V);
  const auto z = random_tensor<float>({M, V}, gen, 0.0, 4.0);
  std::vector<std::int32_t> targets(static_cast<std::size_t>(M));
  for (index_t i = 0; i < M; ++i) targets[i] = static_cast<std::int32_t>((i * 5 + 3) % V);
  tensor<float> d1({M, V}), d2({M, V});
  const double loss1 = ops::cross_entropy(backend::reference{}, z.mat(), targets.data(), d1.mat(), 0.5f);
  double loss2 = 0;
  for (index_t i = 0; i < M; ++i)
    loss2 += row::cross_entropy_row(z.mat().row(i), V, targets[i], d2.mat().row(i), 0.5 / static_cast<double>(M));
  loss2 /= static_cast<double>(M);
  CHECK(loss2 == Approx(loss1).epsilon(1e-12));
  if (V > 1) REQUIRE_CLOSE(d1.data(), d2.data(), d1.size(), 1e-6, 1e-9);

  tensor<float> s1({M, V}), s2({M, V});
  ops::softmax_rows(backend::reference{}, z.mat(), s1.mat());
  for (index_t i = 0; i < M; ++i) row::softmax_row(z.mat().row(i), V, s2.mat().row(i));
  REQUIRE_CLOSE(s1.data(), s2.data(), s1.size(), 1e-6, 1e-9);
}

TEST_CASE("cuda row math: RoPE rotation per (token, head) equals the reference", "[cuda][row][rope]") {
  const auto Dh = GENERATE(index_t(2), index_t(6), index_t(34));
  const auto seq = GENERATE(index_t(1), index_t(5));
  const index_t H = 3, B = 2, pos0 = 4;
  CAPTURE(Dh, seq);
  attnres::rng gen(51 + Dh + seq);
  const auto x = random_tensor<float>({B * seq, H * Dh}, gen);
  for (double sign : {+1.0, -1.0}) {
    tensor<float> a = x, b = x;
    if (sign > 0)
      ops::rope_forward(backend::reference{}, a.mat(), seq, H, pos0, 10000.0);
    else
      ops::rope_backward(backend::reference{}, a.mat(), seq, H, pos0, 10000.0);
    for (index_t i = 0; i < B * seq * H; ++i) row::rope_thread(i, b.data(), H * Dh, seq, H, Dh, pos0, 10000.0, sign);
    REQUIRE_CLOSE(a.data(), b.data(), a.size(), 0.0, 0.0 + 1e-30);  // same operations: bit-identical
  }
}

TEST_CASE("cuda row math: causal attention forward and backward equal the reference", "[cuda][row][attention]") {
  const auto seq = GENERATE(index_t(1), index_t(2), index_t(9));
  const auto Dh = GENERATE(index_t(1), index_t(7), index_t(16));
  const auto B = GENERATE(index_t(1), index_t(2));
  const index_t H = 2, HD = H * Dh, R = B * seq;
  CAPTURE(seq, Dh, B);
  attnres::rng gen(61 + seq * 11 + Dh + B);
  const auto q = random_tensor<float>({R, HD}, gen, 0.0, 1.5);
  const auto k = random_tensor<float>({R, HD}, gen, 0.0, 1.5);
  const auto v = random_tensor<float>({R, HD}, gen);
  const auto dout = random_tensor<float>({R, HD}, gen);
  const float scale = 1.0f / std::sqrt(static_cast<float>(Dh));

  // one call per GPU thread, exactly as the kernels run them (index maps included)
  const row::attention_args<float> args{q.data(), k.data(), v.data(), HD, B, seq, H, Dh, scale};
  const index_t threads = B * H * seq;
  tensor<float> o1({R, HD}), o2({R, HD}), p1({B, H, seq, seq}), p2({B, H, seq, seq});
  p2.fill(-1.0f);  // every entry must be written, zeros above the diagonal included
  ops::causal_attention_forward(backend::reference{}, q.mat(), k.mat(), v.mat(), B, seq, H, o1.mat(), p1.data());
  for (index_t i = 0; i < threads; ++i) row::attention_forward_thread(i, args, o2.data(), HD, p2.data());
  REQUIRE_CLOSE(o1.data(), o2.data(), o1.size(), 1e-5, 1e-6);
  REQUIRE_CLOSE(p1.data(), p2.data(), p1.size(), 1e-5, 1e-7);

  tensor<float> dq1({R, HD}), dk1({R, HD}), dv1({R, HD}), dq2({R, HD}), dk2({R, HD}), dv2({R, HD});
  tensor<float> delta({B, H, seq});
  ops::causal_attention_backward(backend::reference{}, q.mat(), k.mat(), v.mat(), p1.data(), dout.mat(), B, seq, H,
                                 dq1.mat(), dk1.mat(), dv1.mat());
  for (index_t i = 0; i < threads; ++i)  // query pass (all of it runs before the key pass, as two launches)
    row::attention_backward_query_thread(i, args, p1.data(), dout.data(), HD, dq2.data(), HD, delta.data());
  for (index_t i = 0; i < threads; ++i)  // key pass
    row::attention_backward_key_thread(i, args, p1.data(), dout.data(), delta.data(), dk2.data(), dv2.data(), HD);
  REQUIRE_CLOSE(dv1.data(), dv2.data(), dv1.size(), 1e-4, 1e-6);
  if (seq > 1) {
    REQUIRE_CLOSE(dq1.data(), dq2.data(), dq1.size(), 1e-4, 1e-6);
    REQUIRE_CLOSE(dk1.data(), dk2.data(), dk1.size(), 1e-4, 1e-6);
  } else {  // one key: the softmax is constant 1, so dq = dk = 0 exactly
    for (index_t i = 0; i < dq2.size(); ++i) REQUIRE((dq2[i] == 0.0f && dk2[i] == 0.0f));
  }
}

TEST_CASE("cuda row math: a decode step is the attention row over the cache", "[cuda][row][attention]") {
  const index_t B = 2, H = 3, Dh = 5, HD = H * Dh, T_max = 8;
  const auto n = GENERATE(index_t(1), index_t(4), index_t(8));
  CAPTURE(n);
  attnres::rng gen(71 + n);
  const auto q = random_tensor<float>({B, HD}, gen);
  const auto kc = random_tensor<float>({B, T_max, HD}, gen);
  const auto vc = random_tensor<float>({B, T_max, HD}, gen);
  tensor<float> o1({B, HD}), o2({B, HD});
  ops::attention_decode(backend::reference{}, q.mat(), kc.data(), vc.data(), n, T_max, H, o1.mat());
  const float scale = 1.0f / std::sqrt(static_cast<float>(Dh));
  for (index_t i = 0; i < B * H; ++i)
    row::attention_decode_thread(i, q.data(), HD, kc.data(), vc.data(), n, T_max, H, Dh, scale, o2.data(), HD);
  REQUIRE_CLOSE(o1.data(), o2.data(), o1.size(), 1e-5, 1e-6);
}

TEST_CASE("cuda row math: activations equal the reference", "[cuda][row][activation]") {
  const auto F = GENERATE(index_t(1), index_t(7), index_t(33));
  const index_t M = 3;
  CAPTURE(F);
  attnres::rng gen(81 + F);
  const auto gate = random_tensor<float>({M, F}, gen, 0.0, 3.0);
  const auto up = random_tensor<float>({M, F}, gen);
  const auto dout = random_tensor<float>({M, F}, gen);
  const index_t n = M * F;
  tensor<float> a1({M, F}), a2({M, F}), b1({M, F}), b2({M, F});
  ops::swiglu_forward(backend::reference{}, gate.mat(), up.mat(), a1.mat());
  for (index_t i = 0; i < n; ++i) a2[i] = row::swiglu_forward_elem(gate[i], up[i]);
  REQUIRE_CLOSE(a1.data(), a2.data(), n, 1e-6, 1e-7);
  {  // the element kernels' index map on a view with a padded row stride
    tensor<float> padded({M, F + 2}), a3({M, F});
    padded.fill(1e6f);  // the padding must never be read
    for (index_t t = 0; t < M; ++t)
      for (index_t f = 0; f < F; ++f) padded[t * (F + 2) + f] = gate[t * F + f];
    for (index_t i = 0; i < n; ++i)
      a3[i] = row::swiglu_forward_elem(padded[row::element_offset(i, F, F + 2)], up[row::element_offset(i, F, F)]);
    REQUIRE_CLOSE(a1.data(), a3.data(), n, 0.0, 1e-30);
  }
  ops::swiglu_backward(backend::reference{}, gate.mat(), up.mat(), dout.mat(), a1.mat(), b1.mat());
  for (index_t i = 0; i < n; ++i) row::swiglu_backward_elem(gate[i], up[i], dout[i], &a2[i], &b2[i]);
  REQUIRE_CLOSE(a1.data(), a2.data(), n, 1e-6, 1e-7);
  REQUIRE_CLOSE(b1.data(), b2.data(), n, 1e-6, 1e-7);
  ops::gelu_forward(backend::reference{}, gate.mat(), a1.mat());
  for (index_t i = 0; i < n; ++i) a2[i] = row::gelu_forward_elem(gate[i]);
  REQUIRE_CLOSE(a1.data(), a2.data(), n, 1e-6, 1e-7);
  ops::gelu_backward(backend::reference{}, gate.mat(), dout.mat(), a1.mat());
  for (index_t i = 0; i < n; ++i) a2[i] = row::gelu_backward_elem(gate[i], dout[i]);
  REQUIRE_CLOSE(a1.data(), a2.data(), n, 1e-6, 1e-7);
}

TEST_CASE("cuda row math: AdamW element update equals the reference", "[cuda][row][adamw]") {
  const auto n = GENERATE(index_t(1), index_t(13));
  attnres::rng gen(91 + n);
  auto p1 = random_tensor<float>({n}, gen);
  const auto grad = random_tensor<float>({n}, gen);
  auto m1 = random_tensor<float>({n}, gen, 0.0, 0.1);
  auto v1 = random_tensor<float>({n}, gen, 1.0, 0.1);
  for (float& x : v1) x = std::abs(x);
  auto p2 = p1, m2 = m1, v2 = v1;
  const ops::adamw_step_args a{.lr = 3e-3, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1, .step = 7};
  ops::adamw_step(backend::reference{}, p1.data(), grad.data(), m1.data(), v1.data(), n, a);
  // the coefficients rounded to float once, as the CUDA launcher does on the host
  const row::adamw_coeffs<float> k{float(a.lr), float(a.beta1), float(a.beta2), float(a.eps), float(a.weight_decay),
                                   float(1 - a.beta1), float(1 - a.beta2), float(1 - std::pow(a.beta1, 7.0)),
                                   float(1 - std::pow(a.beta2, 7.0))};
  for (index_t i = 0; i < n; ++i) row::adamw_elem(&p2[i], grad[i], &m2[i], &v2[i], k);
  REQUIRE_CLOSE(p1.data(), p2.data(), n, 0.0, 1e-30);  // same operations: bit-identical
  REQUIRE_CLOSE(m1.data(), m2.data(), n, 0.0, 1e-30);
  REQUIRE_CLOSE(v1.data(), v2.data(), n, 0.0, 1e-30);
}

TEST_CASE("cuda row math: embedding rows and channel-wise backward equal the reference", "[cuda][row][embedding]") {
  const index_t V = 11, M = 9;
  const auto D = GENERATE(index_t(1), index_t(13));
  attnres::rng gen(101 + D);
  const auto table = random_tensor<float>({V, D}, gen);
  const auto dout = random_tensor<float>({M, D}, gen);
  std::vector<std::int32_t> tokens{3, 0, 10, 3, 3, 7, 0, 1, 10};  // repeats collect several gradients
  tensor<float> o1({M, D}), o2({M, D}), g1({V, D}), g2({V, D});
  ops::embedding_forward(backend::reference{}, tokens.data(), M, table.mat(), o1.mat());
  for (index_t i = 0; i < M; ++i) row::embedding_forward_row(table.data(), D, tokens[i], D, o2.mat().row(i));
  REQUIRE_CLOSE(o1.data(), o2.data(), o1.size(), 0.0, 1e-30);
  g1.fill(0.25f);
  g2.fill(0.25f);
  ops::embedding_backward(backend::reference{}, tokens.data(), M, dout.mat(), g1.mat());
  for (index_t d = 0; d < D; ++d) row::embedding_backward_channel(tokens.data(), M, dout.data(), D, d, g2.data(), D);
  REQUIRE_CLOSE(g1.data(), g2.data(), g1.size(), 0.0, 1e-30);
}
