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

tensor<T> random_tensor(std::vector<index_t> shape, std::uint64_t seed) {
  tensor<T> t(std::move(shape));
  rng g(seed);
  for (auto& x : t) x = g.normal();
  return t;
}

// A layer's parameters, every listed weight drawn at random; its gradients, zero; the list.
template <class Layer>
struct layer_setup {
  typename Layer::Params p;
  typename Layer::Grads g;
  param_list<T, host_space> list;
  layer_setup(const Layer& layer, const std::string& prefix, std::uint64_t seed)
      : p(layer.init_params()), g(layer.zero_grads()) {
    layer.list(prefix, p, g, list);
    rng r(seed);
    for (auto& e : list)
      for (index_t i = 0; i < e.size(); ++i) e.value[i] = 0.3 * r.normal();
  }
};

// The entry of `list` called `name` (the test fails if there is none).
template <class List>
const auto& entry(const List& list, const std::string& name) {
  for (const auto& e : list)
    if (e.name == name) return e;
  FAIL("no parameter " << name);
  return list.front();
}

// The names point, in order, at the equal row blocks of the stacked weight w and of its
// gradient gw, each listed with its own (rows, cols) shape.
template <class List>
void check_stacked_entries(const List& list, const std::vector<std::string>& names, const tensor<T>& w,
                           const tensor<T>& gw) {
  const index_t n = static_cast<index_t>(names.size()), rows = w.rows() / n, part = rows * w.cols();
  for (index_t j = 0; j < n; ++j) {
    CAPTURE(names[j]);
    const auto& e = entry(list, names[j]);
    CHECK(e.value == w.data() + j * part);
    CHECK(e.grad == gw.data() + j * part);
    CHECK(e.shape == std::vector<index_t>{rows, w.cols()});
  }
}

}  // namespace

TEST_CASE("attention: q, k, v from the stacked weight equal three linear layers, forward and backward", "[nn]") {
  const index_t D = 12, H = 3;
  const double theta = 10000.0;
  const causal_self_attention<T, B> attn(D, H, theta);
  layer_setup setup(attn, "attn.", 1);
  auto &p = setup.p, &g = setup.g;
  const auto& list = setup.list;
  const std::vector<std::string> names = {"attn.wq.weight", "attn.wk.weight", "attn.wv.weight"};
  check_stacked_entries(list, names, p.wqkv, g.wqkv);

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
  const SwiGLU::with<T, B> mlp(D, F);
  layer_setup setup(mlp, "mlp.", 5);
  auto &p = setup.p, &g = setup.g;
  const auto& list = setup.list;
  const std::vector<std::string> names = {"mlp.w_gate.weight", "mlp.w_up.weight"};
  check_stacked_entries(list, names, p.w_gate_up, g.w_gate_up);

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
