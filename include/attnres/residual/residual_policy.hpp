#pragma once
// The residual policy contract: which sources a sublayer's input is made of, and when.
//
// Numbering follows the paper (docs/math/depth_attention.md):
//   source 0            the token embedding x0
//   source l (1..L)     the output v_l = f_l(h_l) of sublayer l (attention and MLP count one each)
//   gather point l      produces h_l, the input of sublayer l (l = 1..L)
//   gather point L+1    produces the stack output, fed to the final norm
//
// A residual policy is a tag type P (Sum, FullAttnRes, BlockAttnRes<N>) whose member template
// P::with<T, Backend> does the work for scalar T on a backend. A bound policy R provides
//
//   R::Params, R::Grads     pseudo-queries and key-norm gains (empty for Sum), and their grads
//   R::Cache                everything one forward pass keeps (sources, α, …); reused across calls
//   R(residual_config)      throws config_error for impossible configurations
//   init_params()           queries = 0 (uniform α at step 0), gains = 1
//   zero_grads()
//
//   forward:   begin(cache, x0, keep_for_backward)
//              for l = 1..L: gather(params, cache, l, h_l); push(cache, l, f_l(h_l))
//              gather(params, cache, L+1, h_out)
//   backward:  begin_backward(cache)
//              gather_backward(params, cache, L+1, dh_out, grads)
//              for l = L..1: source_grad(cache, l, dv_l)             (overwrites dv_l)
//                            dh_l = sublayer_l.backward(dv_l)
//                            gather_backward(params, cache, l, dh_l, grads)   (accumulates grads)
//              source_grad(cache, 0, dx0)
//
// Backward runs in reverse, so source_grad(l) is complete exactly when sublayer l needs it.
// Calls out of this order throw usage_error. With keep_for_backward the caller keeps every
// gather output h_l unchanged until gather_backward(l) (a model keeps them anyway, for its
// sublayers' backward): the policies read them there in place, and a changed one throws
// usage_error. Every view is (M,D) with M = B·T tokens.
//   n_sources(l)            how many sources gather point l mixes
//   gradient_buffer(cache, l)  optional: a tensor_t* (or nullptr) where the caller may write dh_l
//                           (l ≤ L + 1) after begin_backward and before gather_backward(l), for
//                           a policy that keeps dh_l (Block's batched Phase-1 backward reads it
//                           there instead of copying it)
//   source_buffer(cache, l)  optional: a tensor_t* (or nullptr) where the caller may write v_l
//                           after gather(l) and before push(l), for a policy that keeps v_l as
//                           it is (Block's first partial sum of a block, Full's sources): push
//                           then finds v_l in place instead of copying it
//   gather_backward(params, cache, l, dh_l, grads, dh_dot_h)  optional: the same, with
//                           dh_dot_h[t] = dh_l[t] · h_l[t] (M values in the policy's memory
//                           space) from a caller that has them, for a policy that needs them
//                           (depth attention's c): it then skips its own pass over dh_l and h_l.
//                           LM takes them from its RMSNorm's backward (ops/rms_norm.hpp)
//   depth_weights(cache, l) α of gather point l, (n_sources(l), M); empty for Sum
//   prefetch(params, cache, l)  optional: a hint that gather(l) comes soon; LM's decode step calls
//                           it before each sublayer's output projection (Block and Full ask the
//                           caches for the rows gather l reads; a no-op outside decoding)
//
// Write your own policy by following this contract; tests/residual/test_policy_gradients.cpp
// shows how to check it with the public gradient checker (attnres/testing/gradient_check.hpp).

// Generic over the backend: see nn/parameter.hpp.
#ifndef ATTNRES_BACKEND_GENERIC_CODE
#define ATTNRES_BACKEND_GENERIC_CODE 1
#endif

#include <attnres/core/backend.hpp>
#include <attnres/core/tensor.hpp>

#include <concepts>
#include <string_view>

namespace attnres {

// Run-time configuration shared by every policy.
struct residual_config {
  int n_sublayers = 0;          // L (2 per transformer layer)
  index_t d_model = 0;            // D
  double norm_eps = 1e-6;       // ε of the key norm (the model's norm ε)
  bool learn_key_gain = true;   // false: gain-free keys (g stays 1, gets no gradient)
};

template <class R>
concept BoundResidualPolicy =
    requires(const R r, const typename R::Params& params, typename R::Grads& grads, typename R::Cache& cache,
             const typename R::Cache& ccache, int l, bool keep, const_matrix_view<typename R::scalar> in,
             matrix_view<typename R::scalar> out) {
      typename R::scalar;
      typename R::backend;
      { r.config() } -> std::same_as<const residual_config&>;
      { r.n_sublayers() } -> std::convertible_to<int>;
      { r.n_sources(l) } -> std::convertible_to<index_t>;
      { r.init_params() } -> std::same_as<typename R::Params>;
      { r.zero_grads() } -> std::same_as<typename R::Grads>;
      r.begin(cache, in, keep);
      r.gather(params, cache, l, out);
      r.push(cache, l, in);
      r.begin_backward(cache);
      r.gather_backward(params, cache, l, in, grads);
      r.source_grad(cache, l, out);
      { r.depth_weights(ccache, l) } -> std::convertible_to<const_matrix_view<typename R::scalar>>;
    };

// P is a residual policy tag: it has a name and binds to a scalar and backend, both for the
// fast float path and for the double reference path used by gradient checks.
template <class P>
concept ResidualPolicy = requires {
  { P::name } -> std::convertible_to<std::string_view>;
  typename P::template with<float, backend::cpu>;
  typename P::template with<double, backend::reference>;
} && BoundResidualPolicy<typename P::template with<float, backend::cpu>> &&
                         BoundResidualPolicy<typename P::template with<double, backend::reference>>;

// The bound policy of tag P for scalar T on backend B.
template <class P, class T = float, class B = default_backend>
using bind_residual = typename P::template with<T, B>;

}  // namespace attnres
