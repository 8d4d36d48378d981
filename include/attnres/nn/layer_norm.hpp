#pragma once
// LayerNorm — a Norm policy:   y = (x − μ) / sqrt(var + ε) ⊙ g + b     (g init 1, b init 0)

#include <attnres/core/backend.hpp>
#include <attnres/core/tensor.hpp>
#include <attnres/nn/parameter.hpp>
#include <attnres/ops/layer_norm.hpp>

#include <string>
#include <string_view>

namespace attnres {

struct LayerNorm {
  static constexpr std::string_view name = "layernorm";
  template <class T = float, class Backend = default_backend>
  class with;
};

template <class T, class Backend>
class LayerNorm::with {
 public:
  struct Params {
    tensor<T> weight;  // (D)
    tensor<T> bias;    // (D)
  };
  using Grads = Params;
  struct Cache {
    tensor<T> mean, rstd;  // (M)
  };

  with(index_t D, double eps) : D_(D), eps_(eps) {}

  Params init_params() const {
    Params p{tensor<T>({D_}), tensor<T>({D_})};
    p.weight.fill(T(1));
    return p;
  }
  Grads zero_grads() const { return {tensor<T>({D_}), tensor<T>({D_})}; }

  void forward(const Params& p, Cache& c, const_matrix_view<T> x, matrix_view<T> y) const {
    if (c.mean.size() != x.rows) c = Cache{tensor<T>({x.rows}), tensor<T>({x.rows})};
    ops::layer_norm_forward(Backend{}, x, p.weight.data(), p.bias.data(), T(eps_), y, c.mean.data(), c.rstd.data());
  }
  void backward(const Params& p, const Cache& c, const_matrix_view<T> x, const_matrix_view<T> dy, matrix_view<T> dx,
                Grads& g) const {
    ops::layer_norm_backward(Backend{}, x, p.weight.data(), c.mean.data(), c.rstd.data(), dy, dx, g.weight.data(),
                             g.bias.data());
  }

  void list(const std::string& prefix, Params& p, Grads& g, param_list<T>& out) const {
    out.push_back({prefix + "weight", {D_}, p.weight.data(), g.weight.data(), false});
    out.push_back({prefix + "bias", {D_}, p.bias.data(), g.bias.data(), false});
  }

 private:
  index_t D_;
  double eps_;
};

}  // namespace attnres
