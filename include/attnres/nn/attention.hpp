#pragma once
// Causal multi-head self-attention with RoPE, bias-free (DESIGN.md):
//
//   q = x W_qᵀ, k = x W_kᵀ, v = x W_vᵀ          (M,D) each, split into H heads of Dh = D/H
//                                               (one product: [q | k | v] = x [W_q; W_k; W_v]ᵀ)
//   q, k ← RoPE(q, k)                           rotate-half convention, θ = rope_theta
//   ctx_h = softmax( q_h k_hᵀ / √Dh + causal mask ) v_h
//   y = ctx W_oᵀ
//
// For generation, a kv_cache keeps the (rotated) keys and values of every position, so a new
// token only computes its own q, k, v and attends over the cache.
//
// W_q, W_k and W_v are stored stacked, as rows of one (3D, D) tensor, and q, k, v (and their
// gradients) as column blocks of one (M, 3D) buffer: the three projections are then one GEMM
// in the forward and two in the backward (dx with K = 3D, one (3D, D) dW) instead of three and
// six, so x and dx are packed once, not three times (with SwiGLU's gate and up: the products
// −2 … −5 %, a training step −0.4 … −0.9 %; docs/performance.md round 27). Checkpoints and the
// optimizer still see three tensors, wq, wk and wv (list()).

#include <attnres/core/backend.hpp>
#include <attnres/core/error.hpp>
#include <attnres/core/storage.hpp>
#include <attnres/core/tensor.hpp>
#include <attnres/nn/bf16_weights.hpp>
#include <attnres/nn/mlp.hpp>
#include <attnres/nn/parameter.hpp>
#include <attnres/ops/attention_decode.hpp>
#include <attnres/ops/causal_attention.hpp>
#include <attnres/ops/linear.hpp>
#include <attnres/ops/rope.hpp>

#include <algorithm>
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
    tensor_t wqkv;  // (3D,D) rows W_q, then W_k, then W_v
    tensor_t wo;    // (D,D)
    const_view_t wq() const { return detail::row_part(wqkv.mat(), 0, 3); }
    const_view_t wk() const { return detail::row_part(wqkv.mat(), 1, 3); }
    const_view_t wv() const { return detail::row_part(wqkv.mat(), 2, 3); }
  };
  using Grads = Params;
  // W_q, W_k, W_v and W_o rounded to bf16, for decoding with bf16 weights (nn/bf16_weights.hpp;
  // host memory, float models).
  struct Bf16Params {
    tensor<bf16> wqkv;  // (3D,D)
    tensor<bf16> wo;    // (D,D)
    const_matrix_view<bf16> wq() const { return detail::row_part(wqkv.mat(), 0, 3); }
    const_matrix_view<bf16> wk() const { return detail::row_part(wqkv.mat(), 1, 3); }
    const_matrix_view<bf16> wv() const { return detail::row_part(wqkv.mat(), 2, 3); }
  };
  struct Cache {
    index_t batch = 0, seq = 0;
    tensor_t qkv;   // (M,3D) columns q, k, v (after RoPE)
    tensor_t probs;  // (batch, H, T, T)
    tensor_t ctx;    // (M,D) heads concatenated, before W_o
    tensor_t dctx;   // (M,D) backward scratch
    tensor_t dqkv;   // (M,3D) backward scratch, columns dq, dk, dv
    view_t q() { return detail::column_part(qkv.mat(), 0, 3); }
    view_t k() { return detail::column_part(qkv.mat(), 1, 3); }
    view_t v() { return detail::column_part(qkv.mat(), 2, 3); }
  };

  causal_self_attention(index_t D, index_t H, double rope_theta) : D_(D), H_(H), theta_(rope_theta) {
    expects<config_error>(H >= 1 && D % H == 0, "attention: d_model ", D, " is not divisible by n_heads ", H);
    expects<config_error>((D / H) % 2 == 0, "attention: head dimension ", D / H,
                          " (d_model / n_heads) must be even for RoPE");
  }

  Params init_params() const { return zero_grads(); }
  Grads zero_grads() const { return {tensor_t({3 * D_, D_}), tensor_t({D_, D_})}; }

  // y (M,D) = attention(x (M,D)) over `batch` sequences of `seq` tokens (M = batch·seq). With a
  // kv cache, the rotated keys and values of positions 0..seq-1 are stored in it (prefill).
  void forward(const Params& p, Cache& c, const_view_t x, index_t batch, index_t seq, view_t y,
               kv_cache_t* kv = nullptr) const {
    expects<shape_error>(x.rows == batch * seq, "attention: ", x.rows, " rows are not batch × T = ", batch, " × ", seq);
    const index_t M = x.rows;
    c.batch = batch;
    c.seq = seq;
    detail::ensure_shape(c.qkv, M, 3 * D_);
    detail::ensure_shape(c.ctx, M, D_);
    if (c.probs.size() != batch * H_ * seq * seq) c.probs = tensor_t({batch, H_, seq, seq});
    ops::linear_forward(Backend{}, x, p.wqkv.mat(), c.qkv.mat());  // [q | k | v] = x [W_q; W_k; W_v]ᵀ
    ops::rope_forward(Backend{}, c.q(), seq, H_, 0, theta_);
    ops::rope_forward(Backend{}, c.k(), seq, H_, 0, theta_);
    ops::causal_attention_forward(Backend{}, c.q(), c.k(), c.v(), batch, seq, H_, c.ctx.mat(), c.probs.data());
    ops::linear_forward(Backend{}, c.ctx.mat(), p.wo.mat(), y);
    if (kv) store(*kv, c, batch, seq);
  }

  // dx (M,D) += ∂ℒ/∂x ; parameter gradients accumulate
  void backward(const Params& p, Cache& c, const_view_t x, const_view_t dy, view_t dx, Grads& g) const {
    const index_t M = x.rows;
    detail::ensure_shape(c.dctx, M, D_);
    detail::ensure_shape(c.dqkv, M, 3 * D_);
    c.dctx.set_zero();
    ops::linear_backward(Backend{}, c.ctx.mat(), p.wo.mat(), dy, c.dctx.mat(), g.wo.mat());
    const view_t dq = detail::column_part(c.dqkv.mat(), 0, 3), dk = detail::column_part(c.dqkv.mat(), 1, 3),
                 dv = detail::column_part(c.dqkv.mat(), 2, 3);
    ops::causal_attention_backward(Backend{}, c.q(), c.k(), c.v(), c.probs.data(), c.dctx.mat(), c.batch, c.seq, H_,
                                   dq, dk, dv);
    ops::rope_backward(Backend{}, dq, c.seq, H_, 0, theta_);
    ops::rope_backward(Backend{}, dk, c.seq, H_, 0, theta_);
    ops::linear_backward(Backend{}, x, p.wqkv.mat(), c.dqkv.mat(), dx, g.wqkv.mat());  // K = 3D, one (3D,D) dW
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
    decode_with<T>(p.wq(), p.wk(), p.wv(), p.wqkv.mat(), p.wo.mat(), c, x, kv, pos, y, before_output);
  }
  // The same step with the bf16 copies of the weights (to_bf16).
  template <class BeforeOutput>
    requires detail::bf16_decodable<T, space>
  void decode(const Bf16Params& p, Cache& c, const_view_t x, kv_cache_t& kv, index_t pos, view_t y,
              BeforeOutput&& before_output) const {
    decode_with<bf16>(p.wq(), p.wk(), p.wv(), p.wqkv.mat(), p.wo.mat(), c, x, kv, pos, y, before_output);
  }

  // The weights rounded to bf16; `prefix` (e.g. "layers.3.attn.") names them in the
  // numeric_error thrown for a weight with no finite bf16 value.
  Bf16Params to_bf16(const Params& p, const std::string& prefix) const
    requires detail::bf16_decodable<T, space>
  {
    Bf16Params b{tensor<bf16>({3 * D_, D_}), tensor<bf16>({D_, D_})};
    const char* names[] = {"wq.weight", "wk.weight", "wv.weight"};
    for (index_t j = 0; j < 3; ++j)
      detail::round_to_bf16(detail::row_part(p.wqkv.mat(), j, 3), detail::row_part(b.wqkv.mat(), j, 3), prefix + names[j]);
    detail::round_to_bf16(p.wo.mat(), b.wo.mat(), prefix + "wo.weight");
    return b;
  }

  void list(const std::string& prefix, Params& p, Grads& g, param_list<T, space>& out) const {
    const char* names[] = {"wq.weight", "wk.weight", "wv.weight"};
    for (index_t j = 0; j < 3; ++j)
      out.push_back({prefix + names[j], {D_, D_}, p.wqkv.data() + j * D_ * D_, g.wqkv.data() + j * D_ * D_, true});
    out.push_back({prefix + "wo.weight", {D_, D_}, p.wo.data(), g.wo.data(), true});
  }

 private:
  // decode's body for weights of type Weight (T, or bf16 on the host): wqkv is the stack of
  // wq, wk and wv, which the device path multiplies in one product.
  template <class Weight, class BeforeOutput>
  void decode_with(matrix_view<const Weight, space> wq, matrix_view<const Weight, space> wk,
                   matrix_view<const Weight, space> wv, matrix_view<const Weight, space> wqkv,
                   matrix_view<const Weight, space> wo, Cache& c, const_view_t x, kv_cache_t& kv, index_t pos, view_t y,
                   BeforeOutput& before_output) const {
    const index_t batch = x.rows, T_max = kv.k.dim(1);
    expects<usage_error>(pos < T_max, "attention: position ", pos, " is beyond the KV cache (", T_max,
                         " positions)");
    detail::ensure_shape(c.qkv, batch, 3 * D_);
    detail::ensure_shape(c.ctx, batch, D_);
    if constexpr (std::is_same_v<space, host_space>) {
      // q, k, v, RoPE, the cache write and the attention in one op (the cpu runs it head by head)
      ops::attention_decode_step<T, Weight>(Backend{}, x, wq, wk, wv, c.q(), c.k(), c.v(), kv.k.data(), kv.v.data(),
                                            pos, T_max, H_, theta_, c.ctx.mat());
    } else {
      ops::linear_forward(Backend{}, x, wqkv, c.qkv.mat());
      ops::rope_forward(Backend{}, c.q(), 1, H_, pos, theta_);
      ops::rope_forward(Backend{}, c.k(), 1, H_, pos, theta_);
      // row b of k, v → cache position (b, pos): one strided copy per tensor
      copy(const_view_t(c.k()), view_t(kv.k.data() + pos * D_, batch, D_, T_max * D_));
      copy(const_view_t(c.v()), view_t(kv.v.data() + pos * D_, batch, D_, T_max * D_));
      ops::attention_decode(Backend{}, c.q(), kv.k.data(), kv.v.data(), pos + 1, T_max, H_, c.ctx.mat());
    }
    before_output();
    ops::linear_forward<T>(Backend{}, c.ctx.mat(), wo, y);
  }

  void store(kv_cache_t& kv, Cache& c, index_t batch, index_t seq) const {
    const index_t T_max = kv.k.dim(1);
    expects<usage_error>(kv.k.dim(0) == batch && seq <= T_max, "attention: a prompt of ", seq,
                         " tokens does not fit a KV cache of ", T_max, " positions for batch ", kv.k.dim(0));
    // sequence b's seq rows → cache positions (b, 0..seq-1), one strided copy per sequence
    for (index_t b = 0; b < batch; ++b) {
      copy(const_view_t(c.k().middle_rows(b * seq, seq)), view_t(kv.k.data() + b * T_max * D_, seq, D_));
      copy(const_view_t(c.v().middle_rows(b * seq, seq)), view_t(kv.v.data() + b * T_max * D_, seq, D_));
    }
  }
  index_t D_, H_;
  double theta_;
};

}  // namespace attnres
