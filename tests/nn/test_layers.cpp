// nn/attention.hpp and nn/mlp.hpp keep the weights that read one input stacked ([W_q; W_k; W_v],
// [W_gate; W_up]) and run them as one product. These tests hold them to the layer written with
// one linear layer per weight, the way the math reads, forward and backward, on both the GEMM
// path (many rows) and the matrix-vector path (≤ 4 rows), and check that the parameter list
// names each stacked weight's own rows.
#include "catch.hpp"
#include "test_util.hpp"

#include <attnres/nn/attention.hpp>
#include <attnres/nn/mlp.hpp>
#include <attnres/ops/activation.hpp>
#include <attnres/ops/causal_attention.hpp>
#include <attnres/ops/linear.hpp>
#include <attnres/ops/rope.hpp>

#include <string>
#include <vector>

namespace {

using namespace attnres;
using T = double;
using B = backend::cpu;

tensor<T> random_tensor(std::vector<index_t> shape, std::uint64_t seed, double scale = 1.0) {
  tensor<T> t(std::move(shape));
  rng g(seed);
  for (auto& x : t) x = scale * g.normal();
  return t;
}

void fill(tensor<T>& t, std::uint64_t seed) {
  rng g(seed);
  for (auto& x : t) x = 0.3 * g.normal();
}

// The entry of `list` called `name` (the test fails if there is none).
template <class List>
const auto& entry(const List& list, const std::string& name) {
  for (const auto& e : list)
    if (e.name == name) return e;
  FAIL("no parameter " << name);
  return list.front();
}

}  // namespace

TEST_CASE("attention: q, k, v from the stacked weight equal three linear layers, forward and backward", "[nn]") {
  const index_t D = 12, H = 3;
  const double theta = 10000.0;
  causal_self_attention<T, B> attn(D, H, theta);
  auto p = attn.init_params();
  auto g = attn.zero_grads();
  fill(p.wqkv, 1);
  fill(p.wo, 2);
  param_list<T, host_space> list;
  attn.list("attn.", p, g, list);
  // list() names the rows of the stacked weight and of its gradient, in the order q, k, v
  const char* names[] = {"attn.wq.weight", "attn.wk.weight", "attn.wv.weight"};
  for (index_t j = 0; j < 3; ++j) {
    const auto& e = entry(list, names[j]);
    CHECK(e.value == p.wqkv.data() + j * D * D);
    CHECK(e.grad == g.wqkv.data() + j * D * D);
    CHECK(e.shape == std::vector<index_t>{D, D});
  }

  for (const auto& [batch, seq] : {std::pair<index_t, index_t>{2, 5}, {1, 3}}) {  // GEMMs; matrix-vector products
    CAPTURE(batch, seq);
    const index_t M = batch * seq;
    const auto x = random_tensor({M, D}, 3), dy = random_tensor({M, D}, 4);
    typename causal_self_attention<T, B>::Cache c;
    tensor<T> y({M, D}), dx({M, D});
    attn.forward(p, c, x.mat(), batch, seq, y.mat());
    std::fill(g.wqkv.begin(), g.wqkv.end(), 0.0);
    std::fill(g.wo.begin(), g.wo.end(), 0.0);
    attn.backward(p, c, x.mat(), dy.mat(), dx.mat(), g);

    // the same layer with one linear layer per weight
    const tensor<T> wq = to_tensor(p.wq()), wk = to_tensor(p.wk()), wv = to_tensor(p.wv());
    tensor<T> q({M, D}), k({M, D}), v({M, D}), ctx({M, D}), probs({batch, H, seq, seq}), y_ref({M, D});
    ops::linear_forward(B{}, x.mat(), wq.mat(), q.mat());
    ops::linear_forward(B{}, x.mat(), wk.mat(), k.mat());
    ops::linear_forward(B{}, x.mat(), wv.mat(), v.mat());
    ops::rope_forward(B{}, q.mat(), seq, H, 0, theta);
    ops::rope_forward(B{}, k.mat(), seq, H, 0, theta);
    ops::causal_attention_forward(B{}, q.mat(), k.mat(), v.mat(), batch, seq, H, ctx.mat(), probs.data());
    ops::linear_forward(B{}, ctx.mat(), p.wo.mat(), y_ref.mat());
    REQUIRE_CLOSE(y.data(), y_ref.data(), M * D, 1e-12, 1e-13);

    tensor<T> dctx({M, D}), dq({M, D}), dk({M, D}), dv({M, D}), dx_ref({M, D}), dwo({D, D});
    std::vector<tensor<T>> dw(3, tensor<T>({D, D}));
    ops::linear_backward(B{}, ctx.mat(), p.wo.mat(), dy.mat(), dctx.mat(), dwo.mat());
    ops::causal_attention_backward(B{}, q.mat(), k.mat(), v.mat(), probs.data(), dctx.mat(), batch, seq, H, dq.mat(),
                                   dk.mat(), dv.mat());
    ops::rope_backward(B{}, dq.mat(), seq, H, 0, theta);
    ops::rope_backward(B{}, dk.mat(), seq, H, 0, theta);
    ops::linear_backward(B{}, x.mat(), wq.mat(), dq.mat(), dx_ref.mat(), dw[0].mat());
    ops::linear_backward(B{}, x.mat(), wk.mat(), dk.mat(), dx_ref.mat(), dw[1].mat());
    ops::linear_backward(B{}, x.mat(), wv.mat(), dv.mat(), dx_ref.mat(), dw[2].mat());
    REQUIRE_CLOSE(dx.data(), dx_ref.data(), M * D, 1e-12, 1e-13);
    REQUIRE_CLOSE(g.wo.data(), dwo.data(), D * D, 1e-12, 1e-13);
    for (index_t j = 0; j < 3; ++j) REQUIRE_CLOSE(entry(list, names[j]).grad, dw[j].data(), D * D, 1e-12, 1e-13);
  }
}

TEST_CASE("SwiGLU: gate and up from the stacked weight equal two linear layers, forward and backward", "[nn]") {
  const index_t D = 10, F = 14;
  SwiGLU::with<T, B> mlp(D, F);
  auto p = mlp.init_params();
  auto g = mlp.zero_grads();
  fill(p.w_gate_up, 5);
  fill(p.w_down, 6);
  param_list<T, host_space> list;
  mlp.list("mlp.", p, g, list);
  const char* names[] = {"mlp.w_gate.weight", "mlp.w_up.weight"};
  for (index_t j = 0; j < 2; ++j) {
    const auto& e = entry(list, names[j]);
    CHECK(e.value == p.w_gate_up.data() + j * F * D);
    CHECK(e.grad == g.w_gate_up.data() + j * F * D);
    CHECK(e.shape == std::vector<index_t>{F, D});
  }

  for (const index_t M : {9, 2}) {  // GEMMs; matrix-vector products
    CAPTURE(M);
    const auto x = random_tensor({M, D}, 7), dy = random_tensor({M, D}, 8);
    typename SwiGLU::with<T, B>::Cache c;
    tensor<T> y({M, D}), dx({M, D});
    mlp.forward(p, c, x.mat(), y.mat());
    std::fill(g.w_gate_up.begin(), g.w_gate_up.end(), 0.0);
    std::fill(g.w_down.begin(), g.w_down.end(), 0.0);
    mlp.backward(p, c, x.mat(), dy.mat(), dx.mat(), g);

    const tensor<T> wg = to_tensor(p.w_gate()), wu = to_tensor(p.w_up());
    tensor<T> gate({M, F}), up({M, F}), act({M, F}), y_ref({M, D});
    ops::linear_forward(B{}, x.mat(), wg.mat(), gate.mat());
    ops::linear_forward(B{}, x.mat(), wu.mat(), up.mat());
    ops::swiglu_forward(B{}, gate.mat(), up.mat(), act.mat());
    ops::linear_forward(B{}, act.mat(), p.w_down.mat(), y_ref.mat());
    REQUIRE_CLOSE(y.data(), y_ref.data(), M * D, 1e-12, 1e-13);

    tensor<T> dact({M, F}), dgate({M, F}), dup({M, F}), dx_ref({M, D}), dwd({D, F}), dwg({F, D}), dwu({F, D});
    ops::linear_backward(B{}, act.mat(), p.w_down.mat(), dy.mat(), dact.mat(), dwd.mat());
    ops::swiglu_backward(B{}, gate.mat(), up.mat(), dact.mat(), dgate.mat(), dup.mat());
    ops::linear_backward(B{}, x.mat(), wg.mat(), dgate.mat(), dx_ref.mat(), dwg.mat());
    ops::linear_backward(B{}, x.mat(), wu.mat(), dup.mat(), dx_ref.mat(), dwu.mat());
    REQUIRE_CLOSE(dx.data(), dx_ref.data(), M * D, 1e-12, 1e-13);
    REQUIRE_CLOSE(g.w_down.data(), dwd.data(), D * F, 1e-12, 1e-13);
    REQUIRE_CLOSE(entry(list, names[0]).grad, dwg.data(), F * D, 1e-12, 1e-13);
    REQUIRE_CLOSE(entry(list, names[1]).grad, dwu.data(), F * D, 1e-12, 1e-13);
  }
}
