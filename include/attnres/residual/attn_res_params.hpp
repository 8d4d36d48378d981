#pragma once
// Parameters of the attention-residual policies: one pseudo-query w_l and one key-norm gain
// g_l per gather point l = 1..L+1 (stored in row l-1), plus the checks the policies share.

#include <attnres/core/backend.hpp>
#include <attnres/core/error.hpp>
#include <attnres/core/storage.hpp>
#include <attnres/core/tensor.hpp>
#include <attnres/ops/depth_attention.hpp>
#include <attnres/residual/residual_policy.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

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

namespace detail {
// Decoding: asks the caches for data a gather point is about to read (host memory only; a
// prefetch is a hint, never a fault). See the policies' prefetch().
template <class T, class Space>
void prefetch(const T* p, index_t n) {
  if constexpr (std::is_same_v<Space, host_space>) ops::cpu_detail::prefetch_row(p, n);
}
template <class T, class Space>
void prefetch_rows(matrix_view<const T, Space> v) {
  for (index_t r = 0; r < v.rows; ++r) prefetch<T, Space>(v.row(r), v.cols);
}
// Gather point l's pseudo-query and gain, (1 ≤ l ≤ L + 1).
template <class T, class Space>
void prefetch_query(const attn_res_params<T, Space>& p, int l) {
  const index_t D = p.query.cols();
  prefetch<T, Space>(p.query.data() + (l - 1) * D, D);
  prefetch<T, Space>(p.key_gain.data() + (l - 1) * D, D);
}
}  // namespace detail

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
// `what` names the source: a string, or a callable returning one, called only on failure (so
// the per-call cost on the decode path is the statistic, not building a message).
// throw_if_bad_token takes the result of a key_norm_stats (or a fused op that computes one).
template <class What>
void throw_if_bad_token(std::string_view who, const What& what, index_t bad) {
  if (bad < 0) return;
  if constexpr (std::is_invocable_v<const What&>)
    throw numeric_error(detail::concat(who, ": ", what(), " contains NaN or Inf (token ", bad, ")"));
  else
    throw numeric_error(detail::concat(who, ": ", what, " contains NaN or Inf (token ", bad, ")"));
}

template <class T, class Backend, class What>
void key_norm_or_throw(Backend b, std::string_view who, const What& what,
                       std::type_identity_t<const_matrix_view<T, typename backend_traits<Backend>::memory_space>> v,
                       T eps, T* inv_rms) {
  throw_if_bad_token(who, what, ops::key_norm_stats(b, v, eps, inv_rms));
}

// Gather point l's part of the backward op's arguments: its parameters, α over the sources being
// differentiated, c = dh·h, dh, and where its dw, dg accumulate. With learn_key_gain = false the
// gains get no gradient, so dg goes to `dg_sink` (sized to D here, once).
template <class T, class Space, class Storage>
ops::depth_query_grad<T, Space> query_grad(const residual_config& cfg, const attn_res_params<T, Space>& p,
                                           attn_res_grads<T, Space>& g, Storage& dg_sink, int l,
                                           std::type_identity_t<const_matrix_view<T, Space>> alpha, const T* c,
                                           std::type_identity_t<const_matrix_view<T, Space>> dh) {
  const index_t D = cfg.d_model;
  if (!cfg.learn_key_gain && dg_sink.size() != D) dg_sink = Storage({D});
  return {p.at(l), alpha, c, dh, g.query.data() + (l - 1) * D,
          cfg.learn_key_gain ? g.key_gain.data() + (l - 1) * D : dg_sink.data()};
}

// A gather output the policy reads again in the backward (c = dh·h). In training the caller
// keeps every h_l anyway (its sublayer's backward needs it), so the policy keeps a view, not a
// copy. The contract says: leave h_l unchanged until gather_backward(l); a fingerprint of three
// rows (bitwise) turns a broken contract into an error instead of wrong gradients.
template <class T, class Space = host_space>
class kept_view {
 public:
  void keep(const_matrix_view<T, Space> v) {
    view_ = v;
    print_ = fingerprint(v);
  }
  const_matrix_view<T, Space> get(std::string_view who, int l) const {
    expects<usage_error>(fingerprint(view_) == print_, who, ": the output of gather(", l,
                         ") changed before gather_backward(", l,
                         "); with keep_for_backward the caller must keep each gather output unchanged until its "
                         "backward (the policy reads it there)");
    return view_;
  }

 private:
  static std::uint64_t fingerprint(const_matrix_view<T, Space> v) {
    std::uint64_t f = 1469598103934665603ull;  // FNV-1a over the bytes of rows 0, M/2, M-1
    if (v.rows == 0) return f;
    std::vector<T> row(static_cast<std::size_t>(v.cols));
    for (const index_t r : {index_t(0), v.rows / 2, v.rows - 1}) {
      copy_to_host(Space{}, v.row(r), row.data(), v.cols);  // a device row comes to the host first
      const auto* bytes = reinterpret_cast<const unsigned char*>(row.data());
      for (std::size_t i = 0; i < row.size() * sizeof(T); ++i) f = (f ^ bytes[i]) * 1099511628211ull;
    }
    return f;
  }
  const_matrix_view<T, Space> view_{};
  std::uint64_t print_ = 0;
};

// c = dh·h of gather point l, one value per token, into out (M): the caller's dh_dot_h when it
// has them (residual_policy.hpp; LM's RMSNorm backward), else a pass over dh and the kept h. The
// kept h is checked either way.
template <class T, class Space, class Backend>
void upstream_dots(Backend b, std::string_view who, int l, const kept_view<T, Space>& h,
                   std::type_identity_t<const_matrix_view<T, Space>> dh, const T* dh_dot_h, T* out) {
  const const_matrix_view<T, Space> kept = h.get(who, l);
  const index_t M = dh.rows;
  if (!dh_dot_h)
    ops::row_dots(b, dh, kept, out);
  else if (dh_dot_h != out)
    copy(const_matrix_view<T, Space>(dh_dot_h, 1, M, M), matrix_view<T, Space>(out, 1, M, M));
}

}  // namespace detail
}  // namespace attnres
