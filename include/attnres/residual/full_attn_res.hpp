#pragma once
// FullAttnRes — every sublayer's input attends over the embedding and all earlier outputs:
//
//   h_l = Σ_{j<l} α_{j→l} v_j ,   α_{·→l} = softmax_j( w_lᵀ RMSNorm_{g_l}(v_j) ),   v_0 = x0
//
// (paper Eqs. 1–4); gather point L+1 mixes all L+1 sources with its own query. The cache keeps
// every source with its key-norm statistic, so each source's RMS is computed once.

#include <attnres/core/backend.hpp>
#include <attnres/ops/depth_attention.hpp>
#include <attnres/residual/attn_res_params.hpp>
#include <attnres/residual/call_sequence.hpp>
#include <attnres/residual/residual_policy.hpp>

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace attnres {

struct FullAttnRes {
  static constexpr std::string_view name = "full";
  template <class T = float, class Backend = default_backend>
  class with;
};

template <class T, class Backend>
class FullAttnRes::with {
 public:
  using scalar = T;
  using backend = Backend;
  using space = typename backend_traits<Backend>::memory_space;  // where params, caches and views live
  using tensor_t = backend_tensor<T, Backend>;
  using view_t = matrix_view<T, space>;
  using const_view_t = const_matrix_view<T, space>;
  using Params = attn_res_params<T, space>;
  using Grads = attn_res_grads<T, space>;
  struct Cache {
    index_t M = 0;
    std::vector<tensor_t> value;     // L+1 × (M,D)  v_0 = x0, v_1 .. v_L
    std::vector<tensor_t> inv_rms;   // L+1 × (M)    1/r_j
    std::vector<tensor_t> alpha;     // L+1 × (l, M) α of gather point l (index l-1)
    std::vector<detail::kept_view<T, space>> h;// L+1  gather outputs, kept by the caller (training)
    std::vector<tensor_t> dvalue;    // L+1 × (M,D)  accumulated ∂ℒ/∂v_j
    tensor_t c;                      // (M)          dh·h of the point being back-propagated
    // Argument lists of the ops, reused so that a call allocates nothing.
    std::vector<ops::depth_source<T, space>> sources;
    std::vector<view_t> dsources;
    tensor_t unused_dg;                // (D)  dg sink when the key gains are not learned
    detail::call_sequence seq;
  };

  explicit with(residual_config cfg) : cfg_(cfg) { detail::check_config("FullAttnRes", cfg_); }

  const residual_config& config() const { return cfg_; }
  int n_sublayers() const { return cfg_.n_sublayers; }
  index_t n_sources(int l) const { return l; }  // v_0 .. v_{l-1}
  Params init_params() const { return detail::make_attn_res_params<T, space>(cfg_); }
  Grads zero_grads() const { return detail::make_attn_res_grads<T, space>(cfg_); }

  void begin(Cache& c, const_view_t x0 /*(M,D)*/, bool keep_for_backward = true) const {
    expects<shape_error>(x0.cols == cfg_.d_model, "FullAttnRes: embedding has width ", x0.cols,
                         " but D = ", cfg_.d_model);
    const int L = cfg_.n_sublayers;
    const index_t M = x0.rows, D = cfg_.d_model;
    if (c.M != M || c.value.size() != static_cast<std::size_t>(L + 1)) {
      c = Cache{};
      c.M = M;
      for (int j = 0; j <= L; ++j) {
        c.value.emplace_back(std::vector<index_t>{M, D});
        c.inv_rms.emplace_back(std::vector<index_t>{M});
        c.alpha.emplace_back(std::vector<index_t>{j + 1, M});
      }
    }
    c.h.resize(keep_for_backward ? static_cast<std::size_t>(L + 1) : 0);
    add_source(c, 0, x0, "the embedding x0");
    c.seq.begin("FullAttnRes", L, keep_for_backward);
  }

  void gather(const Params& p, Cache& c, int l, view_t h /*(M,D)*/) const {
    detail::check_params("FullAttnRes", cfg_, p);
    c.seq.gather(l);
    detail::check_view<T>("FullAttnRes", "gather output", c.M, cfg_.d_model, h);
    ops::depth_attention_forward(Backend{}, sources(c, l), p.at(l), h, c.alpha[l - 1].mat());
    if (c.seq.keep_for_backward()) c.h[l - 1].keep(const_view_t(h));
  }

  // Decoding (at most prefetch_max_tokens tokens, nothing kept for backward): asks the caches
  // for what gather(l) will read and write, as BlockAttnRes::prefetch does. A no-op otherwise:
  // with more tokens the sources are too many rows for a hint, and the loops prefetch their own.
  static constexpr index_t prefetch_max_tokens = 16;
  void prefetch(const Params& p, const Cache& c, int l) const {
    if (c.seq.keep_for_backward() || c.M > prefetch_max_tokens || l < 1 || static_cast<std::size_t>(l) > c.value.size()) return;
    detail::prefetch_query(p, l);
    for (int j = 0; j < l; ++j) {  // v_{l-1} is the coming push's target
      detail::prefetch_rows(c.value[j].mat());
      detail::prefetch<T, space>(c.inv_rms[j].data(), c.M);
    }
    detail::prefetch_rows(c.alpha[l - 1].mat());
  }

  void push(Cache& c, int l, const_view_t v /*(M,D)*/) const {
    c.seq.push(l);
    detail::check_view<T>("FullAttnRes", "sublayer output", c.M, cfg_.d_model, v);
    add_source(c, l, v, [l] { return "the output of sublayer " + std::to_string(l); });
  }

  // Where a caller may write v_l after gather(l), before push(l): the source slot push(l) would
  // copy it into.
  tensor_t* source_buffer(Cache& c, int l) const {
    return l >= 1 && static_cast<std::size_t>(l) < c.value.size() ? &c.value[l] : nullptr;
  }

  void begin_backward(Cache& c) const {
    c.seq.begin_backward();
    // Not zeroed: the output's backward (the first, reading every source) overwrites them all.
    c.dvalue.resize(c.value.size());
    for (auto& dv : c.dvalue)
      if (dv.rows() != c.M) dv = tensor_t({c.M, cfg_.d_model});
    if (c.c.size() != c.M) c.c = tensor_t({c.M});
  }

  // dh_dot_h (M) or null: c = dh·h from the caller (residual_policy.hpp)
  void gather_backward(const Params& p, Cache& c, int l, const_view_t dh /*(M,D)*/, Grads& g,
                       const T* dh_dot_h = nullptr) const {
    c.seq.gather_backward(l);
    detail::check_view<T>("FullAttnRes", "gradient dh", c.M, cfg_.d_model, dh);
    detail::upstream_dots(Backend{}, "FullAttnRes", l, c.h[l - 1], dh, dh_dot_h, c.c.data());
    c.dsources.clear();
    for (int j = 0; j < l; ++j) c.dsources.push_back(c.dvalue[j].mat());
    const auto point = detail::query_grad(cfg_, p, g, c.unused_dg, l, c.alpha[l - 1].mat(), c.c.data(), dh);
    ops::depth_attention_backward(Backend{}, sources(c, l), std::span<const ops::depth_query_grad<T, space>>(&point, 1),
                                  std::span<const view_t>(c.dsources),
                                  l == cfg_.n_sublayers + 1 ? ops::grad_write::overwrite : ops::grad_write::accumulate);
  }

  void source_grad(Cache& c, int l, view_t dv /*(M,D)*/) const {
    c.seq.source_grad(l);
    detail::check_view<T>("FullAttnRes", "source gradient", c.M, cfg_.d_model, dv);
    copy(c.dvalue[l].mat(), dv);
  }

  const_view_t depth_weights(const Cache& c, int l) const {
    expects<usage_error>(l >= 1 && l <= cfg_.n_sublayers + 1 && static_cast<std::size_t>(l) <= c.alpha.size(),
                         "FullAttnRes: no depth weights for gather point ", l);
    return c.alpha[l - 1].mat();
  }

 private:
  template <class What>
  void add_source(Cache& c, int j, const_view_t v, const What& what) const {
    const view_t slot = c.value[j].mat();
    if (v.data != slot.data || v.stride != slot.stride) copy(v, slot);  // else the caller wrote it there
    detail::key_norm_or_throw(Backend{}, "FullAttnRes", what, v, T(cfg_.norm_eps), c.inv_rms[j].data());
  }
  // The sources of gather point l: v_0 .. v_{l-1}.
  std::span<const ops::depth_source<T, space>> sources(Cache& c, int l) const {
    c.sources.clear();
    for (int j = 0; j < l; ++j) c.sources.push_back({c.value[j].mat(), c.inv_rms[j].data()});
    return c.sources;
  }
  residual_config cfg_;
};

}  // namespace attnres
