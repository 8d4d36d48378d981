#pragma once
// LayerNorm — a Norm policy:   y = (x − μ) / sqrt(var + ε) ⊙ g + b     (g init 1, b init 0)

#include <attnres/core/backend.hpp>
#include <attnres/core/storage.hpp>
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
  using space = typename backend_traits<Backend>::memory_space;  // where params, caches and views live
  using tensor_t = backend_tensor<T, Backend>;
  using view_t = matrix_view<T, space>;
  using const_view_t = const_matrix_view<T, space>;

  struct Params {
    tensor_t weight;  // (D)
    tensor_t bias;    // (D)
  };
  using Grads = Params;
  struct Cache {
    tensor_t mean, rstd;  // (M)
  };

  with(index_t D, double eps) : D_(D), eps_(eps) {}

  Params init_params() const {
    Params p{tensor_t({D_}), tensor_t({D_})};
    p.weight.fill(T(1));
    return p;
  }
  Grads zero_grads() const { return {tensor_t({D_}), tensor_t({D_})}; }

  void forward(const Params& p, Cache& c, const_view_t x, view_t y) const {
    if (c.mean.size() != x.rows) c = Cache{tensor_t({x.rows}), tensor_t({x.rows})};
    ops::layer_norm_forward(Backend{}, x, p.weight.data(), p.bias.data(), T(eps_), y, c.mean.data(), c.rstd.data());
  }
  void backward(const Params& p, const Cache& c, const_view_t x, const_view_t dy, view_t dx, Grads& g) const {
    ops::layer_norm_backward(Backend{}, x, p.weight.data(), c.mean.data(), c.rstd.data(), dy, dx, g.weight.data(),
                             g.bias.data());
  }

  void list(const std::string& prefix, Params& p, Grads& g, param_list<T, space>& out) const {
    out.push_back({prefix + "weight", {D_}, p.weight.data(), g.weight.data(), false});
    out.push_back({prefix + "bias", {D_}, p.bias.data(), g.bias.data(), false});
  }

 private:
  index_t D_;
  double eps_;
};

}  // namespace attnres
