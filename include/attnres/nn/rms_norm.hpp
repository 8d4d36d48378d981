#pragma once
// RMSNorm — a Norm policy:   y = x / sqrt(mean_d x² + ε) ⊙ g        (g: "weight", init 1)
// The sublayer pre-norms and the final norm of the model use the Norm policy; the AttnRes key
// norm is separate (it lives in the residual policy).

#include <attnres/core/backend.hpp>
#include <attnres/core/storage.hpp>
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
  using space = typename backend_traits<Backend>::memory_space;  // where params, caches and views live
  using tensor_t = backend_tensor<T, Backend>;
  using view_t = matrix_view<T, space>;
  using const_view_t = const_matrix_view<T, space>;

  struct Params {
    tensor_t weight;  // (D)
  };
  using Grads = Params;
  struct Cache {
    tensor_t inv_rms;  // (M)
  };

  with(index_t D, double eps) : D_(D), eps_(eps) {}

  Params init_params() const {
    Params p{tensor_t({D_})};
    p.weight.fill(T(1));
    return p;
  }
  Grads zero_grads() const { return {tensor_t({D_})}; }

  // y (M,D) = RMSNorm(x (M,D))
  void forward(const Params& p, Cache& c, const_view_t x, view_t y) const {
    if (c.inv_rms.size() != x.rows) c.inv_rms = tensor_t({x.rows});
    ops::rms_norm_forward(Backend{}, x, p.weight.data(), T(eps_), y, c.inv_rms.data());
  }
  // dx (M,D) += ∂ℒ/∂x ;  g.weight += ∂ℒ/∂g ;  x_dot_dx[t] = x_t · (what this call adds to dx_t)
  // when given (M values, in the backend's memory): LM hands it to the residual policy as
  // c = dh·h when x is a gather output (ops/rms_norm.hpp)
  void backward(const Params& p, const Cache& c, const_view_t x, const_view_t dy, view_t dx, Grads& g,
                T* x_dot_dx = nullptr) const {
    ops::rms_norm_backward(Backend{}, x, p.weight.data(), c.inv_rms.data(), dy, dx, g.weight.data(), x_dot_dx);
  }

  void list(const std::string& prefix, Params& p, Grads& g, param_list<T, space>& out) const {
    out.push_back({prefix + "weight", {D_}, p.weight.data(), g.weight.data(), false});
  }

 private:
  index_t D_;
  double eps_;
};

}  // namespace attnres
