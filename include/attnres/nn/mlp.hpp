#pragma once
// MLP sublayers — compile-time policies with PyTorch Linear layouts ([out, in]):
//
//   SwiGLU:  y = W_down ( silu(W_gate x) ⊙ (W_up x) )     w_gate, w_up (F,D); w_down (D,F)
//   GELU:    y = W_down ( gelu(W_up x) )                   w_up (F,D); w_down (D,F); exact erf GELU

#include <attnres/core/backend.hpp>
#include <attnres/core/storage.hpp>
#include <attnres/core/tensor.hpp>
#include <attnres/nn/parameter.hpp>
#include <attnres/ops/activation.hpp>
#include <attnres/ops/linear.hpp>

#include <array>
#include <string>
#include <string_view>

namespace attnres {

namespace detail {
// Reshapes a scratch tensor (host or device) to (rows, cols) unless it already is.
template <class Tensor>
void ensure_shape(Tensor& t, index_t rows, index_t cols) {
  if (t.rank() != 2 || t.dim(0) != rows || t.dim(1) != cols) t = Tensor({rows, cols});
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
  using space = typename backend_traits<Backend>::memory_space;  // where params, caches and views live
  using tensor_t = backend_tensor<T, Backend>;
  using view_t = matrix_view<T, space>;
  using const_view_t = const_matrix_view<T, space>;

  struct Params {
    tensor_t w_gate, w_up;  // (F,D)
    tensor_t w_down;        // (D,F)
  };
  using Grads = Params;
  struct Cache {
    tensor_t gate, up, act;     // (M,F)  W_gate x, W_up x, silu(gate) ⊙ up
    tensor_t dact, dgate, dup;  // (M,F)  backward scratch
  };

  with(index_t D, index_t F) : D_(D), F_(F) {}
  index_t hidden() const { return F_; }

  Params init_params() const { return zero_grads(); }
  Grads zero_grads() const { return {tensor_t({F_, D_}), tensor_t({F_, D_}), tensor_t({D_, F_})}; }

  // y (M,D) = MLP(x (M,D))
  void forward(const Params& p, Cache& c, const_view_t x, view_t y) const { forward(p, c, x, y, [] {}); }
  // before_output() runs just before the down projection (LM prefetches there when decoding).
  template <class BeforeOutput>
  void forward(const Params& p, Cache& c, const_view_t x, view_t y, BeforeOutput&& before_output) const {
    const index_t M = x.rows;
    detail::ensure_shape(c.gate, M, F_);
    detail::ensure_shape(c.up, M, F_);
    detail::ensure_shape(c.act, M, F_);
    using target = ops::linear_target<T, space>;  // gate and up read the same x: one call
    ops::linear_forward_shared_input(Backend{}, x,
                                     std::array{target{p.w_gate.mat(), c.gate.mat()}, target{p.w_up.mat(), c.up.mat()}});
    ops::swiglu_forward(Backend{}, c.gate.mat(), c.up.mat(), c.act.mat());
    before_output();
    ops::linear_forward(Backend{}, c.act.mat(), p.w_down.mat(), y);
  }
  // dx (M,D) += ∂ℒ/∂x; parameter gradients accumulate
  void backward(const Params& p, Cache& c, const_view_t x, const_view_t dy, view_t dx, Grads& g) const {
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

  void list(const std::string& prefix, Params& p, Grads& g, param_list<T, space>& out) const {
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
  using space = typename backend_traits<Backend>::memory_space;  // where params, caches and views live
  using tensor_t = backend_tensor<T, Backend>;
  using view_t = matrix_view<T, space>;
  using const_view_t = const_matrix_view<T, space>;

  struct Params {
    tensor_t w_up;    // (F,D)
    tensor_t w_down;  // (D,F)
  };
  using Grads = Params;
  struct Cache {
    tensor_t up, act;    // (M,F)  W_up x, gelu(up)
    tensor_t dact, dup;  // (M,F)
  };

  with(index_t D, index_t F) : D_(D), F_(F) {}
  index_t hidden() const { return F_; }

  Params init_params() const { return zero_grads(); }
  Grads zero_grads() const { return {tensor_t({F_, D_}), tensor_t({D_, F_})}; }

  void forward(const Params& p, Cache& c, const_view_t x, view_t y) const { forward(p, c, x, y, [] {}); }
  template <class BeforeOutput>
  void forward(const Params& p, Cache& c, const_view_t x, view_t y, BeforeOutput&& before_output) const {
    const index_t M = x.rows;
    detail::ensure_shape(c.up, M, F_);
    detail::ensure_shape(c.act, M, F_);
    ops::linear_forward(Backend{}, x, p.w_up.mat(), c.up.mat());
    ops::gelu_forward(Backend{}, c.up.mat(), c.act.mat());
    before_output();
    ops::linear_forward(Backend{}, c.act.mat(), p.w_down.mat(), y);
  }
  void backward(const Params& p, Cache& c, const_view_t x, const_view_t dy, view_t dx, Grads& g) const {
    const index_t M = x.rows;
    detail::ensure_shape(c.dact, M, F_);
    detail::ensure_shape(c.dup, M, F_);
    c.dact.set_zero();
    ops::linear_backward(Backend{}, c.act.mat(), p.w_down.mat(), dy, c.dact.mat(), g.w_down.mat());
    ops::gelu_backward(Backend{}, c.up.mat(), c.dact.mat(), c.dup.mat());
    ops::linear_backward(Backend{}, x, p.w_up.mat(), c.dup.mat(), dx, g.w_up.mat());
  }

  void list(const std::string& prefix, Params& p, Grads& g, param_list<T, space>& out) const {
    out.push_back({prefix + "w_up.weight", {F_, D_}, p.w_up.data(), g.w_up.data(), true});
    out.push_back({prefix + "w_down.weight", {D_, F_}, p.w_down.data(), g.w_down.data(), true});
  }

 private:
  index_t D_, F_;
};

}  // namespace attnres
