#pragma once
// MLP sublayers — compile-time policies with PyTorch Linear layouts ([out, in]):
//
//   SwiGLU:  y = W_down ( silu(W_gate x) ⊙ (W_up x) )     w_gate, w_up (F,D); w_down (D,F)
//   GELU:    y = W_down ( gelu(W_up x) )                   w_up (F,D); w_down (D,F); exact erf GELU

#include <attnres/core/backend.hpp>
#include <attnres/core/tensor.hpp>
#include <attnres/nn/parameter.hpp>
#include <attnres/ops/activation.hpp>
#include <attnres/ops/linear.hpp>

#include <string>
#include <string_view>

namespace attnres {

namespace detail {
template <class T>
void ensure_shape(tensor<T>& t, index_t rows, index_t cols) {
  if (t.rank() != 2 || t.dim(0) != rows || t.dim(1) != cols) t = tensor<T>({rows, cols});
}
}  // namespace detail

struct SwiGLU {
  static constexpr std::string_view name = "swiglu";
  template <class T = float, class Backend = default_backend>
  class with;
};

template <class T, class Backend>
class SwiGLU::with {
 public:
  struct Params {
    tensor<T> w_gate, w_up;  // (F,D)
    tensor<T> w_down;        // (D,F)
  };
  using Grads = Params;
  struct Cache {
    tensor<T> gate, up, act;     // (M,F)  W_gate x, W_up x, silu(gate) ⊙ up
    tensor<T> dact, dgate, dup;  // (M,F)  backward scratch
  };

  with(index_t D, index_t F) : D_(D), F_(F) {}
  index_t hidden() const { return F_; }

  Params init_params() const { return zero_grads(); }
  Grads zero_grads() const { return {tensor<T>({F_, D_}), tensor<T>({F_, D_}), tensor<T>({D_, F_})}; }

  // y (M,D) = MLP(x (M,D))
  void forward(const Params& p, Cache& c, const_matrix_view<T> x, matrix_view<T> y) const {
    const index_t M = x.rows;
    detail::ensure_shape(c.gate, M, F_);
    detail::ensure_shape(c.up, M, F_);
    detail::ensure_shape(c.act, M, F_);
    ops::linear_forward(Backend{}, x, p.w_gate.mat(), c.gate.mat());
    ops::linear_forward(Backend{}, x, p.w_up.mat(), c.up.mat());
    ops::swiglu_forward(Backend{}, c.gate.mat(), c.up.mat(), c.act.mat());
    ops::linear_forward(Backend{}, c.act.mat(), p.w_down.mat(), y);
  }
  // dx (M,D) += ∂ℒ/∂x; parameter gradients accumulate
  void backward(const Params& p, Cache& c, const_matrix_view<T> x, const_matrix_view<T> dy, matrix_view<T> dx,
                Grads& g) const {
    const index_t M = x.rows;
    detail::ensure_shape(c.dact, M, F_);
    detail::ensure_shape(c.dgate, M, F_);
    detail::ensure_shape(c.dup, M, F_);
    c.dact.set_zero();
    ops::linear_backward(Backend{}, c.act.mat(), p.w_down.mat(), dy, c.dact.mat(), g.w_down.mat());
    ops::swiglu_backward(Backend{}, c.gate.mat(), c.up.mat(), c.dact.mat(), c.dgate.mat(), c.dup.mat());
    ops::linear_backward(Backend{}, x, p.w_gate.mat(), c.dgate.mat(), dx, g.w_gate.mat());
    ops::linear_backward(Backend{}, x, p.w_up.mat(), c.dup.mat(), dx, g.w_up.mat());
  }

  void list(const std::string& prefix, Params& p, Grads& g, param_list<T>& out) const {
    out.push_back({prefix + "w_gate.weight", {F_, D_}, p.w_gate.data(), g.w_gate.data(), true});
    out.push_back({prefix + "w_up.weight", {F_, D_}, p.w_up.data(), g.w_up.data(), true});
    out.push_back({prefix + "w_down.weight", {D_, F_}, p.w_down.data(), g.w_down.data(), true});
  }

 private:
  index_t D_, F_;
};

struct GELU {
  static constexpr std::string_view name = "gelu";
  template <class T = float, class Backend = default_backend>
  class with;
};

template <class T, class Backend>
class GELU::with {
 public:
  struct Params {
    tensor<T> w_up;    // (F,D)
    tensor<T> w_down;  // (D,F)
  };
  using Grads = Params;
  struct Cache {
    tensor<T> up, act;    // (M,F)  W_up x, gelu(up)
    tensor<T> dact, dup;  // (M,F)
  };

  with(index_t D, index_t F) : D_(D), F_(F) {}
  index_t hidden() const { return F_; }

  Params init_params() const { return zero_grads(); }
  Grads zero_grads() const { return {tensor<T>({F_, D_}), tensor<T>({D_, F_})}; }

  void forward(const Params& p, Cache& c, const_matrix_view<T> x, matrix_view<T> y) const {
    const index_t M = x.rows;
    detail::ensure_shape(c.up, M, F_);
    detail::ensure_shape(c.act, M, F_);
    ops::linear_forward(Backend{}, x, p.w_up.mat(), c.up.mat());
    ops::gelu_forward(Backend{}, c.up.mat(), c.act.mat());
    ops::linear_forward(Backend{}, c.act.mat(), p.w_down.mat(), y);
  }
  void backward(const Params& p, Cache& c, const_matrix_view<T> x, const_matrix_view<T> dy, matrix_view<T> dx,
                Grads& g) const {
    const index_t M = x.rows;
    detail::ensure_shape(c.dact, M, F_);
    detail::ensure_shape(c.dup, M, F_);
    c.dact.set_zero();
    ops::linear_backward(Backend{}, c.act.mat(), p.w_down.mat(), dy, c.dact.mat(), g.w_down.mat());
    ops::gelu_backward(Backend{}, c.up.mat(), c.dact.mat(), c.dup.mat());
    ops::linear_backward(Backend{}, x, p.w_up.mat(), c.dup.mat(), dx, g.w_up.mat());
  }

  void list(const std::string& prefix, Params& p, Grads& g, param_list<T>& out) const {
    out.push_back({prefix + "w_up.weight", {F_, D_}, p.w_up.data(), g.w_up.data(), true});
    out.push_back({prefix + "w_down.weight", {D_, F_}, p.w_down.data(), g.w_down.data(), true});
  }

 private:
  index_t D_, F_;
};

}  // namespace attnres
