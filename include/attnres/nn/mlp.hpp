#pragma once
// MLP sublayers — compile-time policies with PyTorch Linear layouts ([out, in]):
//
//   SwiGLU:  y = W_down ( silu(W_gate x) ⊙ (W_up x) )     w_gate, w_up (F,D); w_down (D,F)
//            (W_gate and W_up stacked in one (2F, D) tensor: [gate | up] = x [W_gate; W_up]ᵀ is
//            one GEMM, and its backward two; checkpoints still see w_gate and w_up)
//   GELU:    y = W_down ( gelu(W_up x) )                   w_up (F,D); w_down (D,F); exact erf GELU

#include <attnres/core/backend.hpp>
#include <attnres/core/storage.hpp>
#include <attnres/core/tensor.hpp>
#include <attnres/nn/bf16_weights.hpp>
#include <attnres/nn/parameter.hpp>
#include <attnres/ops/activation.hpp>
#include <attnres/ops/linear.hpp>

#include <string>
#include <string_view>

namespace attnres {

namespace detail {
// Reshapes a scratch tensor (host or device) to (rows, cols) unless it already is.
template <class Tensor>
void ensure_shape(Tensor& t, index_t rows, index_t cols) {
  if (t.rank() != 2 || t.dim(0) != rows || t.dim(1) != cols) t = Tensor({rows, cols});
}

// Part j of n equal parts: the rows of one weight in a stack of n (e.g. [W_q; W_k; W_v]), or the
// columns of one layer's output in an activation that holds n side by side ([q | k | v]).
template <class View>
View row_part(View w, index_t j, index_t n) {
  return w.middle_rows(j * (w.rows / n), w.rows / n);
}
template <class View>
View column_part(View a, index_t j, index_t n) {
  const index_t cols = a.cols / n;
  return View(a.data + j * cols, a.rows, cols, a.stride);
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
    tensor_t w_gate_up;  // (2F,D) rows W_gate, then W_up
    tensor_t w_down;     // (D,F)
    const_view_t w_gate() const { return detail::row_part(w_gate_up.mat(), 0, 2); }
    const_view_t w_up() const { return detail::row_part(w_gate_up.mat(), 1, 2); }
  };
  using Grads = Params;
  // The weights rounded to bf16, for decoding with bf16 weights (nn/bf16_weights.hpp; host
  // memory, float models).
  struct Bf16Params {
    tensor<bf16> w_gate_up;  // (2F,D)
    tensor<bf16> w_down;     // (D,F)
  };
  struct Cache {
    tensor_t gate_up;   // (M,2F) columns W_gate x, W_up x
    tensor_t act;       // (M,F)  silu(gate) ⊙ up
    tensor_t dact;      // (M,F)  backward scratch
    tensor_t dgate_up;  // (M,2F) backward scratch, columns dgate, dup
    view_t gate() { return detail::column_part(gate_up.mat(), 0, 2); }
    view_t up() { return detail::column_part(gate_up.mat(), 1, 2); }
  };

  with(index_t D, index_t F) : D_(D), F_(F) {}
  index_t hidden() const { return F_; }

  Params init_params() const { return zero_grads(); }
  Grads zero_grads() const { return {tensor_t({2 * F_, D_}), tensor_t({D_, F_})}; }

  // y (M,D) = MLP(x (M,D))
  void forward(const Params& p, Cache& c, const_view_t x, view_t y) const { forward(p, c, x, y, [] {}); }
  // before_output() runs just before the down projection (LM prefetches there when decoding).
  template <class BeforeOutput>
  void forward(const Params& p, Cache& c, const_view_t x, view_t y, BeforeOutput&& before_output) const {
    forward_with<T>(p.w_gate_up.mat(), p.w_down.mat(), c, x, y, before_output);
  }
  // The forward with the bf16 copies of the weights (decoding; to_bf16).
  template <class BeforeOutput>
    requires detail::bf16_decodable<T, space>
  void forward(const Bf16Params& p, Cache& c, const_view_t x, view_t y, BeforeOutput&& before_output) const {
    forward_with<bf16>(p.w_gate_up.mat(), p.w_down.mat(), c, x, y, before_output);
  }
  // The weights rounded to bf16; `prefix` (e.g. "layers.3.mlp.") names them in the numeric_error
  // thrown for a weight with no finite bf16 value.
  Bf16Params to_bf16(const Params& p, const std::string& prefix) const
    requires detail::bf16_decodable<T, space>
  {
    Bf16Params b{tensor<bf16>({2 * F_, D_}), tensor<bf16>({D_, F_})};
    detail::round_to_bf16(p.w_gate(), detail::row_part(b.w_gate_up.mat(), 0, 2), prefix + "w_gate.weight");
    detail::round_to_bf16(p.w_up(), detail::row_part(b.w_gate_up.mat(), 1, 2), prefix + "w_up.weight");
    detail::round_to_bf16(p.w_down.mat(), b.w_down.mat(), prefix + "w_down.weight");
    return b;
  }
  // dx (M,D) += ∂ℒ/∂x; parameter gradients accumulate
  void backward(const Params& p, Cache& c, const_view_t x, const_view_t dy, view_t dx, Grads& g) const {
    const index_t M = x.rows;
    detail::ensure_shape(c.dact, M, F_);
    detail::ensure_shape(c.dgate_up, M, 2 * F_);
    c.dact.set_zero();
    ops::linear_backward(Backend{}, c.act.mat(), p.w_down.mat(), dy, c.dact.mat(), g.w_down.mat());
    ops::swiglu_backward(Backend{}, c.gate(), c.up(), c.dact.mat(), detail::column_part(c.dgate_up.mat(), 0, 2),
                         detail::column_part(c.dgate_up.mat(), 1, 2));
    ops::linear_backward(Backend{}, x, p.w_gate_up.mat(), c.dgate_up.mat(), dx, g.w_gate_up.mat());  // K = 2F, one dW
  }

  void list(const std::string& prefix, Params& p, Grads& g, param_list<T, space>& out) const {
    out.push_back({prefix + "w_gate.weight", {F_, D_}, p.w_gate_up.data(), g.w_gate_up.data(), true});
    out.push_back({prefix + "w_up.weight", {F_, D_}, p.w_gate_up.data() + F_ * D_, g.w_gate_up.data() + F_ * D_, true});
    out.push_back({prefix + "w_down.weight", {D_, F_}, p.w_down.data(), g.w_down.data(), true});
  }

 private:
  template <class Weight, class BeforeOutput>
  void forward_with(matrix_view<const Weight, space> w_gate_up, matrix_view<const Weight, space> w_down, Cache& c,
                    const_view_t x, view_t y, BeforeOutput& before_output) const {
    const index_t M = x.rows;
    detail::ensure_shape(c.gate_up, M, 2 * F_);
    detail::ensure_shape(c.act, M, F_);
    ops::linear_forward<T>(Backend{}, x, w_gate_up, c.gate_up.mat());  // gate and up read the same x: one product
    ops::swiglu_forward(Backend{}, c.gate(), c.up(), c.act.mat());
    before_output();
    ops::linear_forward<T>(Backend{}, c.act.mat(), w_down, y);
  }

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
  // The weights rounded to bf16, for decoding with bf16 weights (nn/bf16_weights.hpp; host
  // memory, float models).
  struct Bf16Params {
    tensor<bf16> w_up;    // (F,D)
    tensor<bf16> w_down;  // (D,F)
  };
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
    forward_with<T>(p.w_up.mat(), p.w_down.mat(), c, x, y, before_output);
  }
  // The forward with the bf16 copies of the weights (decoding; to_bf16).
  template <class BeforeOutput>
    requires detail::bf16_decodable<T, space>
  void forward(const Bf16Params& p, Cache& c, const_view_t x, view_t y, BeforeOutput&& before_output) const {
    forward_with<bf16>(p.w_up.mat(), p.w_down.mat(), c, x, y, before_output);
  }
  // The weights rounded to bf16 (see SwiGLU::to_bf16).
  Bf16Params to_bf16(const Params& p, const std::string& prefix) const
    requires detail::bf16_decodable<T, space>
  {
    Bf16Params b{tensor<bf16>({F_, D_}), tensor<bf16>({D_, F_})};
    detail::round_to_bf16(p.w_up.mat(), b.w_up.mat(), prefix + "w_up.weight");
    detail::round_to_bf16(p.w_down.mat(), b.w_down.mat(), prefix + "w_down.weight");
    return b;
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
  template <class Weight, class BeforeOutput>
  void forward_with(matrix_view<const Weight, space> w_up, matrix_view<const Weight, space> w_down, Cache& c,
                    const_view_t x, view_t y, BeforeOutput& before_output) const {
    const index_t M = x.rows;
    detail::ensure_shape(c.up, M, F_);
    detail::ensure_shape(c.act, M, F_);
    ops::linear_forward<T>(Backend{}, x, w_up, c.up.mat());
    ops::gelu_forward(Backend{}, c.up.mat(), c.act.mat());
    before_output();
    ops::linear_forward<T>(Backend{}, c.act.mat(), w_down, y);
  }

  index_t D_, F_;
};

}  // namespace attnres
