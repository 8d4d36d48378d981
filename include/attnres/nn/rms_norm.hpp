#pragma once
// RMSNorm — a Norm policy:   y = x / sqrt(mean_d x² + ε) ⊙ g        (g: "weight", init 1)
// The sublayer pre-norms and the final norm of the model use the Norm policy; the AttnRes key
// norm is separate (it lives in the residual policy).

#include <attnres/core/backend.hpp>
#include <attnres/core/tensor.hpp>
#include <attnres/nn/parameter.hpp>
#include <attnres/ops/rms_norm.hpp>

#include <string>
#include <string_view>

namespace attnres {

struct RMSNorm {
  static constexpr std::string_view name = "rmsnorm";
  template <class T = float, class Backend = default_backend>
  class with;
};

template <class T, class Backend>
class RMSNorm::with {
 public:
  struct Params {
    tensor<T> weight;  // (D)
  };
  using Grads = Params;
  struct Cache {
    tensor<T> inv_rms;  // (M)
  };

  with(index_t D, double eps) : D_(D), eps_(eps) {}

  Params init_params() const {
    Params p{tensor<T>({D_})};
    p.weight.fill(T(1));
    return p;
  }
  Grads zero_grads() const { return {tensor<T>({D_})}; }

  // y (M,D) = RMSNorm(x (M,D))
  void forward(const Params& p, Cache& c, const_matrix_view<T> x, matrix_view<T> y) const {
    if (c.inv_rms.size() != x.rows) c.inv_rms = tensor<T>({x.rows});
    ops::rms_norm_forward(Backend{}, x, p.weight.data(), T(eps_), y, c.inv_rms.data());
  }
  // dx (M,D) += ∂ℒ/∂x ;  g.weight += ∂ℒ/∂g
  void backward(const Params& p, const Cache& c, const_matrix_view<T> x, const_matrix_view<T> dy, matrix_view<T> dx,
                Grads& g) const {
    ops::rms_norm_backward(Backend{}, x, p.weight.data(), c.inv_rms.data(), dy, dx, g.weight.data());
  }

  void list(const std::string& prefix, Params& p, Grads& g, param_list<T>& out) const {
    out.push_back({prefix + "weight", {D_}, p.weight.data(), g.weight.data(), false});
  }

 private:
  index_t D_;
  double eps_;
};

}  // namespace attnres
