#pragma once
// toy_stack: a residual policy driven through a stack of toy sublayers f_l(h) = tanh(h W_l),
// with the loss ℒ = Σ h_out ⊙ R. It exercises the whole policy contract — forward, the reverse
// backward with source gradients flowing back through sublayers — without the transformer
// layers, so policies can be gradient-checked, compared with PyTorch goldens (the same model is
// in tests/golden/make_golden.py) and inspected in examples. Plain loops: it is a test rig.

#include <attnres/core/random.hpp>
#include <attnres/core/tensor.hpp>
#include <attnres/residual/residual_policy.hpp>

#include <cmath>
#include <vector>

namespace attnres::testing {

template <class Policy>
  requires BoundResidualPolicy<Policy>
class toy_stack {
 public:
  using T = typename Policy::scalar;

  Policy policy;
  typename Policy::Params params;
  typename Policy::Cache cache;
  tensor<T> x0;              // (M,D)
  std::vector<tensor<T>> W;  // L × (D,D)
  tensor<T> R;               // (M,D)
  std::vector<tensor<T>> e;  // L × (M,D)  additive offsets: v_l = tanh(h_l W_l) + e_l (zero by
                             //            default), so ∂ℒ/∂e_l = ∂ℒ/∂v_l can be checked numerically

  // Forward results.
  std::vector<tensor<T>> h;  // L+1 × (M,D)  gather outputs (h[L] is the stack output)
  std::vector<tensor<T>> v;  // L × (M,D)    sublayer outputs

  // Backward results.
  typename Policy::Grads grads;
  tensor<T> dx0;               // (M,D)
  std::vector<tensor<T>> dv;   // L × (M,D)  total ∂ℒ/∂v_l
  std::vector<tensor<T>> dh;   // L+1 × (M,D)
  std::vector<tensor<T>> dW;   // L × (D,D)

  toy_stack(residual_config cfg, index_t M) : policy(cfg), params(policy.init_params()), grads(policy.zero_grads()) {
    const index_t D = cfg.d_model;
    const int L = cfg.n_sublayers;
    x0 = tensor<T>({M, D});
    R = tensor<T>({M, D});
    for (int l = 0; l < L; ++l) W.emplace_back(std::vector<index_t>{D, D});
    for (int l = 0; l <= L; ++l) h.emplace_back(std::vector<index_t>{M, D});
    for (int l = 0; l < L; ++l) v.emplace_back(std::vector<index_t>{M, D});
    for (int l = 0; l < L; ++l) e.emplace_back(std::vector<index_t>{M, D});
  }

  // Random inputs: x0, R ~ N(0,1), W_l ~ N(0, 1/D).
  void randomize_inputs(rng& gen) {
    fill_normal(x0, gen);
    fill_normal(R, gen);
    for (auto& w : W) fill_normal(w, gen, 0.0, 1.0 / std::sqrt(static_cast<double>(x0.cols())));
  }

  int L() const { return policy.n_sublayers(); }

  // gather → sublayer → push, as in the paper; returns ℒ.
  T forward(bool keep_for_backward = true) {
    policy.begin(cache, x0.mat(), keep_for_backward);
    for (int l = 1; l <= L(); ++l) {
      policy.gather(params, cache, l, h[l - 1].mat());
      sublayer_forward(l);
      policy.push(cache, l, v[l - 1].mat());
    }
    policy.gather(params, cache, L() + 1, h[L()].mat());
    T loss = 0;
    for (index_t i = 0; i < R.size(); ++i) loss += h[L()][i] * R[i];
    return loss;
  }

  // Reverse pass after forward(true); fills grads, dx0, dv, dh, dW (grads are overwritten).
  void backward() {
    grads = policy.zero_grads();
    const index_t M = x0.rows(), D = x0.cols();
    dv.assign(L(), tensor<T>({M, D}));
    dh.assign(L() + 1, tensor<T>({M, D}));
    dW.assign(L(), tensor<T>({D, D}));
    dx0 = tensor<T>({M, D});
    policy.begin_backward(cache);
    std::copy(R.begin(), R.end(), dh[L()].begin());  // ∂ℒ/∂h_out = R
    policy.gather_backward(params, cache, L() + 1, dh[L()].mat(), grads);
    for (int l = L(); l >= 1; --l) {
      policy.source_grad(cache, l, dv[l - 1].mat());
      sublayer_backward(l);
      policy.gather_backward(params, cache, l, dh[l - 1].mat(), grads);
    }
    policy.source_grad(cache, 0, dx0.mat());
  }

 private:
  // v = tanh(h W) + e
  void sublayer_forward(int l) {
    const auto& hin = h[l - 1];
    const auto& w = W[l - 1];
    const auto& offset = e[l - 1];
    auto& out = v[l - 1];
    const index_t M = hin.rows(), D = hin.cols();
    for (index_t t = 0; t < M; ++t)
      for (index_t j = 0; j < D; ++j) {
        T z = 0;
        for (index_t k = 0; k < D; ++k) z += hin[t * D + k] * w[k * D + j];
        out[t * D + j] = std::tanh(z) + offset[t * D + j];
      }
  }
  // y = tanh(z): dz = dv ⊙ (1 − y²);  dh = dz Wᵀ;  dW = hᵀ dz
  void sublayer_backward(int l) {
    const auto& hin = h[l - 1];
    const auto& w = W[l - 1];
    const auto& out = v[l - 1];
    const auto& g = dv[l - 1];
    const index_t M = hin.rows(), D = hin.cols();
    std::vector<T> dz(static_cast<std::size_t>(D));
    for (index_t t = 0; t < M; ++t) {
      for (index_t j = 0; j < D; ++j) {
        const T y = out[t * D + j] - e[l - 1][t * D + j];
        dz[j] = g[t * D + j] * (1 - y * y);
      }
      for (index_t k = 0; k < D; ++k) {
        T s = 0;
        for (index_t j = 0; j < D; ++j) {
          s += dz[j] * w[k * D + j];
          dW[l - 1][k * D + j] += hin[t * D + k] * dz[j];
        }
        dh[l - 1][t * D + k] = s;
      }
    }
  }
};

}  // namespace attnres::testing
