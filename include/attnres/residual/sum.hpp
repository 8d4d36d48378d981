#pragma once
// Sum — the standard residual connection (PreNorm baseline):
//
//   h_l = x0 + Σ_{i<l} v_i        (gather point l = 1..L+1; L+1 is the stack output)
//
// One stream is kept; gather reads it and push adds to it. Backward: every v_i (and x0)
// receives the sum of the gradients of all gather points after it.

#include <attnres/core/backend.hpp>
#include <attnres/core/storage.hpp>
#include <attnres/residual/attn_res_params.hpp>
#include <attnres/residual/call_sequence.hpp>
#include <attnres/residual/residual_policy.hpp>

#include <string>
#include <string_view>

namespace attnres {

struct Sum {
  static constexpr std::string_view name = "sum";
  template <class T = float, class Backend = default_backend>
  class with;
};

template <class T, class Backend>
class Sum::with {
 public:
  using scalar = T;
  using backend = Backend;
  using space = typename backend_traits<Backend>::memory_space;  // where params, caches and views live
  using tensor_t = backend_tensor<T, Backend>;
  using view_t = matrix_view<T, space>;
  using const_view_t = const_matrix_view<T, space>;
  struct Params {};
  struct Grads {};
  struct Cache {
    tensor_t stream;    // (M,D)  x0 + Σ pushed v
    tensor_t dstream;   // (M,D)  Σ of the gradients of the gather points already back-propagated
    tensor_t scratch;   // (M)    key-norm statistics, used only to detect NaN/Inf
    detail::call_sequence seq;
  };

  explicit with(residual_config cfg) : cfg_(cfg) { detail::check_config("Sum", cfg_); }

  const residual_config& config() const { return cfg_; }
  int n_sublayers() const { return cfg_.n_sublayers; }
  index_t n_sources(int) const { return 1; }  // one stream
  Params init_params() const { return {}; }
  Grads zero_grads() const { return {}; }

  void begin(Cache& c, const_view_t x0 /*(M,D)*/, bool keep_for_backward = true) const {
    expects<shape_error>(x0.cols == cfg_.d_model, "Sum: embedding has width ", x0.cols, " but D = ", cfg_.d_model);
    if (c.stream.rows() != x0.rows) {  // reused across steps: a fresh buffer costs page faults
      c.stream = tensor_t({x0.rows, x0.cols});
      c.scratch = tensor_t({x0.rows});
    }
    copy(x0, c.stream.mat());
    check_finite("the embedding x0", c, x0);
    c.seq.begin("Sum", cfg_.n_sublayers, keep_for_backward);
  }

  void gather(const Params&, Cache& c, int l, view_t h /*(M,D)*/) const {
    c.seq.gather(l);
    detail::check_view<T>("Sum", "gather output", c.stream.rows(), cfg_.d_model, h);
    copy(c.stream.mat(), h);
  }

  void push(Cache& c, int l, const_view_t v /*(M,D)*/) const {
    c.seq.push(l);
    detail::check_view<T>("Sum", "sublayer output", c.stream.rows(), cfg_.d_model, v);
    check_finite([&] { return "the output of sublayer " + std::to_string(l); }, c, v);
    add_to(v, c.stream.mat());
  }

  void begin_backward(Cache& c) const {
    c.seq.begin_backward();
    if (c.dstream.rows() != c.stream.rows()) c.dstream = tensor_t({c.stream.rows(), c.stream.cols()});
    c.dstream.set_zero();
  }

  void gather_backward(const Params&, Cache& c, int l, const_view_t dh /*(M,D)*/, Grads&) const {
    c.seq.gather_backward(l);
    detail::check_view<T>("Sum", "gradient dh", c.stream.rows(), cfg_.d_model, dh);
    add_to(dh, c.dstream.mat());
  }

  void source_grad(Cache& c, int l, view_t dv /*(M,D)*/) const {
    c.seq.source_grad(l);
    detail::check_view<T>("Sum", "source gradient", c.stream.rows(), cfg_.d_model, dv);
    copy(c.dstream.mat(), dv);
  }

  // Sum mixes with fixed unit weights and records no α.
  const_view_t depth_weights(const Cache&, int) const { return {}; }

 private:
  // `what`: a string, or a callable building one only if the check fails (push runs per token in decode)
  template <class What>
  void check_finite(const What& what, Cache& c, const_view_t v) const {
    detail::key_norm_or_throw(Backend{}, "Sum", what, v, T(cfg_.norm_eps), c.scratch.data());
  }
  residual_config cfg_;
};

}  // namespace attnres
