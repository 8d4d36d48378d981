#pragma once
// Causal multi-head self-attention with RoPE, bias-free (DESIGN.md):
//
//   q = x W_qᵀ, k = x W_kᵀ, v = x W_vᵀ          (M,D) each, split into H heads of Dh = D/H
//   q, k ← RoPE(q, k)                           rotate-half convention, θ = rope_theta
//   ctx_h = softmax( q_h k_hᵀ / √Dh + causal mask ) v_h
//   y = ctx W_oᵀ
//
// For generation, a kv_cache keeps the (rotated) keys and values of every position, so a new
// token only computes its own q, k, v and attends over the cache.

#include <attnres/core/backend.hpp>
#include <attnres/core/error.hpp>
#include <attnres/core/storage.hpp>
#include <attnres/core/tensor.hpp>
#include <attnres/nn/mlp.hpp>
#include <attnres/nn/parameter.hpp>
#include <attnres/ops/attention_decode.hpp>
#include <attnres/ops/causal_attention.hpp>
#include <attnres/ops/linear.hpp>
#include <attnres/ops/rope.hpp>

#include <algorithm>
#include <array>
#include <string>
#include <type_traits>

namespace attnres {

// Keys and values of one attention layer for every position generated so far, in the memory
// space of the backend that runs the attention.
template <class T, class Space = host_space>
struct kv_cache_layer {
  storage_t<T, Space> k, v;  // (batch, T_max, D)
};

template <class T, class Backend = default_backend>
class causal_self_attention {
 public:
  using space = typename backend_traits<Backend>::memory_space;  // where params, caches and views live
  using tensor_t = backend_tensor<T, Backend>;
  using view_t = matrix_view<T, space>;
  using const_view_t = const_matrix_view<T, space>;
  using kv_cache_t = kv_cache_layer<T, space>;

  struct Params {
    tensor_t wq, wk, wv, wo;  // (D,D) each
  };
  using Grads = Params;
  struct Cache {
    index_t batch = 0, seq = 0;
    tensor_t q, k, v;         // (M,D) after RoPE
    tensor_t probs;           // (batch, H, T, T)
    tensor_t ctx;             // (M,D) heads concatenated, before W_o
    tensor_t dctx, dq, dk, dv;  // (M,D) backward scratch
  };

  causal_self_attention(index_t D, index_t H, double rope_theta) : D_(D), H_(H), theta_(rope_theta) {
    expects<config_error>(H >= 1 && D % H == 0, "attention: d_model ", D, " is not divisible by n_heads ", H);
    expects<config_error>((D / H) % 2 == 0, "attention: head dimension ", D / H,
                          " (d_model / n_heads) must be even for RoPE");
  }

  Params init_params() const { return zero_grads(); }
  Grads zero_grads() const {
    return {tensor_t({D_, D_}), tensor_t({D_, D_}), tensor_t({D_, D_}), tensor_t({D_, D_})};
  }

  // y (M,D) = attention(x (M,D)) over `batch` sequences of `seq` tokens (M = batch·seq). With a
  // kv cache, the rotated keys and values of positions 0..seq-1 are stored in it (prefill).
  void forward(const Params& p, Cache& c, const_view_t x, index_t batch, index_t seq, view_t y,
               kv_cache_t* kv = nullptr) const {
    expects<shape_error>(x.rows == batch * seq, "attention: ", x.rows, " rows are not batch × T = ", batch, " × ", seq);
    const index_t M = x.rows;
    c.batch = batch;
    c.seq = seq;
    for (tensor_t* t : {&c.q, &c.k, &c.v, &c.ctx}) detail::ensure_shape(*t, M, D_);
    if (c.probs.size() != batch * H_ * seq * seq) c.probs = tensor_t({batch, H_, seq, seq});
    project_qkv(p, c, x);
    ops::rope_forward(Backend{}, c.q.mat(), seq, H_, 0, theta_);
    ops::rope_forward(Backend{}, c.k.mat(), seq, H_, 0, theta_);
    ops::causal_attention_forward(Backend{}, c.q.mat(), c.k.mat(), c.v.mat(), batch, seq, H_, c.ctx.mat(),
                                  c.probs.data());
    ops::linear_forward(Backend{}, c.ctx.mat(), p.wo.mat(), y);
    if (kv) store(*kv, c, batch, seq);
  }

  // dx (M,D) += ∂ℒ/∂x ; parameter gradients accumulate
  void backward(const Params& p, Cache& c, const_view_t x, const_view_t dy, view_t dx, Grads& g) const {
    const index_t M = x.rows;
    for (tensor_t* t : {&c.dctx, &c.dq, &c.dk, &c.dv}) detail::ensure_shape(*t, M, D_);
    c.dctx.set_zero();
    ops::linear_backward(Backend{}, c.ctx.mat(), p.wo.mat(), dy, c.dctx.mat(), g.wo.mat());
    ops::causal_attention_backward(Backend{}, c.q.mat(), c.k.mat(), c.v.mat(), c.probs.data(), c.dctx.mat(), c.batch,
                                   c.seq, H_, c.dq.mat(), c.dk.mat(), c.dv.mat());
    ops::rope_backward(Backend{}, c.dq.mat(), c.seq, H_, 0, theta_);
    ops::rope_backward(Backend{}, c.dk.mat(), c.seq, H_, 0, theta_);
    ops::linear_backward(Backend{}, x, p.wq.mat(), c.dq.mat(), dx, g.wq.mat());
    ops::linear_backward(Backend{}, x, p.wk.mat(), c.dk.mat(), dx, g.wk.mat());
    ops::linear_backward(Backend{}, x, p.wv.mat(), c.dv.mat(), dx, g.wv.mat());
  }

  // One new token per sequence at position `pos`: x (batch, D) → y (batch, D). Its key and
  // value join the cache; the query attends over positions 0..pos. before_output() runs just
  // before the output projection (LM prefetches the next gather point's data there).
  void decode(const Params& p, Cache& c, const_view_t x, kv_cache_t& kv, index_t pos, view_t y) const {
    decode(p, c, x, kv, pos, y, [] {});
  }
  template <class BeforeOutput>
  void decode(const Params& p, Cache& c, const_view_t x, kv_cache_t& kv, index_t pos, view_t y,
              BeforeOutput&& before_output) const {
    const index_t batch = x.rows, T_max = kv.k.dim(1);
    expects<usage_error>(pos < T_max, "attention: position ", pos, " is beyond the KV cache (", T_max,
                         " positions)");
    for (tensor_t* t : {&c.q, &c.k, &c.v, &c.ctx}) detail::ensure_shape(*t, batch, D_);
    if constexpr (std::is_same_v<space, host_space>) {
      // q, k, v, RoPE, the cache write and the attention in one op (the cpu runs it head by head)
      ops::attention_decode_step(Backend{}, x, p.wq.mat(), p.wk.mat(), p.wv.mat(), c.q.mat(), c.k.mat(), c.v.mat(),
                                 kv.k.data(), kv.v.data(), pos, T_max, H_, theta_, c.ctx.mat());
    } else {
      project_qkv(p, c, x);
      ops::rope_forward(Backend{}, c.q.mat(), 1, H_, pos, theta_);
      ops::rope_forward(Backend{}, c.k.mat(), 1, H_, pos, theta_);
      // row b of k, v → cache position (b, pos): one strided copy per tensor
      copy(c.k.mat(), view_t(kv.k.data() + pos * D_, batch, D_, T_max * D_));
      copy(c.v.mat(), view_t(kv.v.data() + pos * D_, batch, D_, T_max * D_));
      ops::attention_decode(Backend{}, c.q.mat(), kv.k.data(), kv.v.data(), pos + 1, T_max, H_, c.ctx.mat());
    }
    before_output();
    ops::linear_forward(Backend{}, c.ctx.mat(), p.wo.mat(), y);
  }

  // q, k, v = x Wqᵀ, x Wkᵀ, x Wvᵀ: three layers reading one input, in one call
  static void project_qkv(const Params& p, Cache& c, const_view_t x) {
    using target = ops::linear_target<T, space>;
    ops::linear_forward_shared_input(
        Backend{}, x, std::array{target{p.wq.mat(), c.q.mat()}, target{p.wk.mat(), c.k.mat()}, target{p.wv.mat(), c.v.mat()}});
  }

  void list(const std::string& prefix, Params& p, Grads& g, param_list<T, space>& out) const {
    out.push_back({prefix + "wq.weight", {D_, D_}, p.wq.data(), g.wq.data(), true});
    out.push_back({prefix + "wk.weight", {D_, D_}, p.wk.data(), g.wk.data(), true});
    out.push_back({prefix + "wv.weight", {D_, D_}, p.wv.data(), g.wv.data(), true});
    out.push_back({prefix + "wo.weight", {D_, D_}, p.wo.data(), g.wo.data(), true});
  }

 private:
  void store(kv_cache_t& kv, const Cache& c, index_t batch, index_t seq) const {
    const index_t T_max = kv.k.dim(1);
    expects<usage_error>(kv.k.dim(0) == batch && seq <= T_max, "attention: a prompt of ", seq,
                         " tokens does not fit a KV cache of ", T_max, " positions for batch ", kv.k.dim(0));
    // sequence b (seq·D contiguous values) → cache positions (b, 0..seq-1): one strided copy
    copy(const_view_t(c.k.data(), batch, seq * D_), view_t(kv.k.data(), batch, seq * D_, T_max * D_));
    copy(const_view_t(c.v.data(), batch, seq * D_), view_t(kv.v.data(), batch, seq * D_, T_max * D_));
  }
  index_t D_, H_;
  double theta_;
};

}  // namespace attnres
