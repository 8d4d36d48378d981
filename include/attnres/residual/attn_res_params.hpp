#pragma once
// Parameters of the attention-residual policies: one pseudo-query w_l and one key-norm gain
// g_l per gather point l = 1..L+1 (stored in row l-1), plus the checks the policies share.

#include <attnres/core/backend.hpp>
#include <attnres/core/error.hpp>
#include <attnres/core/storage.hpp>
#include <attnres/core/tensor.hpp>
#include <attnres/ops/depth_attention.hpp>
#include <attnres/residual/residual_policy.hpp>

#include <string>
#include <type_traits>

namespace attnres {

// Space: where the tensors live (the backend's memory space).
template <class T, class Space = host_space>
struct attn_res_params {
  storage_t<T, Space> query;     // (L+1, D)  w_l; zero at init, so α is uniform at step 0
  storage_t<T, Space> key_gain;  // (L+1, D)  g_l; one at init

  // The pseudo-query and gain of gather point l (1..L+1).
  ops::depth_query<T> at(int l) const {
    const index_t D = query.cols();
    return {query.data() + (l - 1) * D, key_gain.data() + (l - 1) * D};
  }
};

template <class T, class Space = host_space>
struct attn_res_grads {
  storage_t<T, Space> query;     // (L+1, D)  ∂ℒ/∂w
  storage_t<T, Space> key_gain;  // (L+1, D)  ∂ℒ/∂g (stays zero with learn_key_gain = false)
};

namespace detail {

template <class T, class Space = host_space>
attn_res_params<T, Space> make_attn_res_params(const residual_config& cfg) {
  using tensor_t = storage_t<T, Space>;
  attn_res_params<T, Space> p{tensor_t({cfg.n_sublayers + 1, cfg.d_model}), tensor_t({cfg.n_sublayers + 1, cfg.d_model})};
  p.key_gain.fill(T(1));
  return p;
}

template <class T, class Space = host_space>
attn_res_grads<T, Space> make_attn_res_grads(const residual_config& cfg) {
  using tensor_t = storage_t<T, Space>;
  return {tensor_t({cfg.n_sublayers + 1, cfg.d_model}), tensor_t({cfg.n_sublayers + 1, cfg.d_model})};
}

inline void check_config(std::string_view who, const residual_config& cfg) {
  expects<config_error>(cfg.n_sublayers >= 1, who, ": needs at least one sublayer, got L = ", cfg.n_sublayers);
  expects<config_error>(cfg.d_model >= 1, who, ": model width D must be positive, got ", cfg.d_model);
  expects<config_error>(cfg.norm_eps >= 0, who, ": norm epsilon must be non-negative, got ", cfg.norm_eps);
}

// Parameters must match the configuration they are used with.
template <class T, class Space>
void check_params(std::string_view who, const residual_config& cfg, const attn_res_params<T, Space>& p) {
  auto check = [&](const storage_t<T, Space>& t, const char* name) {
    expects<shape_error>(t.rank() == 2 && t.dim(0) == cfg.n_sublayers + 1 && t.dim(1) == cfg.d_model, who, ": ",
                         name, " must be (L+1, D) = (", cfg.n_sublayers + 1, ", ", cfg.d_model, ")");
  };
  check(p.query, "query");
  check(p.key_gain, "key_gain");
}

// A view handed to a policy must be (M, D) with the M of this forward pass.
// (View: a matrix_view of T in any memory space; only its shape is read.)
template <class T, class View>
void check_view(std::string_view who, std::string_view what, index_t M, index_t D, const View& v) {
  static_assert(std::is_same_v<typename View::value_type, T>);
  expects<shape_error>(v.rows == M && v.cols == D, who, ": ", what, " has shape (", v.rows, ", ", v.cols,
                       ") but this forward pass is (M, D) = (", M, ", ", D, ")");
}

// Computes the key-norm statistic of a source and refuses NaN/Inf: a non-finite r means the
// source row has a NaN or Inf (or overflows), which would silently poison every later α.
template <class T, class Backend>
void key_norm_or_throw(Backend b, std::string_view who, const std::string& what,
                       std::type_identity_t<const_matrix_view<T, typename backend_traits<Backend>::memory_space>> v, T eps,
                       T* inv_rms) {
  const index_t bad = ops::key_norm_stats(b, v, eps, inv_rms);
  expects<numeric_error>(bad < 0, who, ": ", what, " contains NaN or Inf (token ", bad, ")");
}

}  // namespace detail
}  // namespace attnres
