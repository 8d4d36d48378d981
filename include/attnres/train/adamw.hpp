#pragma once
// train/adamw — the AdamW optimizer (Loshchilov & Hutter) over a param_list, with decoupled
// weight decay and checkpointable state. The per-element math is ops::adamw_step; this class owns
// the moments, the step count, and the bookkeeping that ties them to parameter names.
//
// Per parameter p with gradient g, at step t = 1, 2, … (the same update as torch.optim.AdamW):
//   p ← p · (1 − lr·λ)                    decoupled decay; λ = weight_decay if p.decay, else 0
//   m ← β1·m + (1 − β1)·g
//   v ← β2·v + (1 − β2)·g²
//   p ← p − lr/(1 − β1^t) · m / (sqrt(v)/sqrt(1 − β2^t) + ε)
// Norm gains, biases and pseudo-queries carry decay == false, so they are never pulled to zero.
//
// Contract:
//   adamw(cfg, params)    validates cfg (config_error) and the list (usage_error: null buffers,
//                         empty or duplicate names); zero moments shaped like each parameter.
//   step(params, lr)      requires the same list as the constructor saw: same length, and at every
//                         position the same name and shape (checked on every call, usage_error
//                         otherwise — cheap next to the update). Updates every value in place;
//                         grads are only read. lr is usually lr_schedule::at(steps()).
//   zero_grad(params)     sets every grad to 0 (same list check).
//   save_state(w, prefix) adds tensors "<prefix>m.<name>" and "<prefix>v.<name>" (the moments, in
//                         the parameters' scalar type, so a round trip is bit-exact) and metadata
//                         "<prefix>type" = "adamw", "<prefix>step", and the hyper-parameters
//                         "<prefix>lr", "<prefix>beta1", "<prefix>beta2", "<prefix>eps",
//                         "<prefix>weight_decay" (informational: load_state does not need them).
//   load_state(f, params, prefix)
//                         requires the constructor's list (usage_error); reads "<prefix>step" and
//                         every moment, checking that each exists with the parameter's shape, is
//                         finite (v also ≥ 0), and that the file holds no moments for parameters
//                         outside the list. Any problem is an io_error naming the tensor or key;
//                         on error the optimizer is unchanged.
// The moments live in the backend's memory space, like the parameters (a CUDA optimizer takes a
// device param_list); save_state / load_state go through host copies, so the files are the same.

#include <attnres/core/backend.hpp>
#include <attnres/core/error.hpp>
#include <attnres/core/storage.hpp>
#include <attnres/core/tensor.hpp>
#include <attnres/io/safetensors.hpp>
#include <attnres/nn/parameter.hpp>
#include <attnres/ops/adamw.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace attnres::train {

struct adamw_config {
  double lr = 3e-4;  // used by step(params); step(params, lr) overrides it (for schedules)
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;  // applied only to params with decay == true
};

template <class T, class Backend = default_backend>
class adamw {
 public:
  using space = typename backend_traits<Backend>::memory_space;
  using tensor_t = backend_tensor<T, Backend>;
  using params_t = param_list<T, space>;

  adamw(adamw_config cfg, const params_t& params) : cfg_(cfg) {
    expects<config_error>(std::isfinite(cfg.lr) && cfg.lr >= 0.0,
                          "adamw: lr must be finite and non-negative, got ", cfg.lr);
    expects<config_error>(cfg.beta1 >= 0.0 && cfg.beta1 < 1.0, "adamw: beta1 must be in [0, 1), got ",
                          cfg.beta1);
    expects<config_error>(cfg.beta2 >= 0.0 && cfg.beta2 < 1.0, "adamw: beta2 must be in [0, 1), got ",
                          cfg.beta2);
    expects<config_error>(std::isfinite(cfg.eps) && cfg.eps >= 0.0,
                          "adamw: eps must be finite and non-negative, got ", cfg.eps);
    expects<config_error>(std::isfinite(cfg.weight_decay) && cfg.weight_decay >= 0.0,
                          "adamw: weight_decay must be finite and non-negative, got ",
                          cfg.weight_decay);
    std::set<std::string_view> seen;
    slots_.reserve(params.size());
    for (const auto& p : params) {
      expects<usage_error>(!p.name.empty(), "adamw: parameter ", slots_.size(), " has an empty name");
      expects<usage_error>(seen.insert(p.name).second, "adamw: parameter name '", p.name,
                           "' appears twice (optimizer state is keyed by name)");
      expects<usage_error>(p.size() == 0 || (p.value != nullptr && p.grad != nullptr),
                           "adamw: parameter '", p.name, "' has no value or gradient buffer");
      slots_.push_back({p.name, p.shape, tensor_t(p.shape), tensor_t(p.shape)});
    }
  }

  const adamw_config& config() const { return cfg_; }

  // Number of steps taken so far (restored by load_state).
  std::int64_t steps() const { return step_; }

  // One update of every parameter at learning rate lr.
  void step(const params_t& params, double lr) {
    check_same(params, "adamw::step");
    expects<usage_error>(std::isfinite(lr) && lr >= 0.0,
                         "adamw::step: lr must be finite and non-negative, got ", lr);
    ++step_;
    ops::adamw_step_args args{lr, cfg_.beta1, cfg_.beta2, cfg_.eps, 0.0, step_};
    for (std::size_t i = 0; i < params.size(); ++i) {
      const auto& p = params[i];
      const index_t n = p.size();
      if (n == 0) continue;
      args.weight_decay = p.decay ? cfg_.weight_decay : 0.0;
      ops::adamw_step(Backend{}, p.value, static_cast<const T*>(p.grad), slots_[i].m.data(),
                      slots_[i].v.data(), n, args);
    }
  }

  // One update at the configured lr.
  void step(const params_t& params) { step(params, cfg_.lr); }

  void zero_grad(const params_t& params) const {
    check_same(params, "adamw::zero_grad");
    for (const auto& p : params)
      if (p.size() > 0) fill_n(space{}, p.grad, p.size(), T(0));
  }

  void save_state(io::safetensors_writer& w, const std::string& prefix = "optim.") const {
    w.set_metadata(prefix + "type", "adamw");
    w.set_metadata(prefix + "step", std::to_string(step_));
    w.set_metadata(prefix + "lr", to_text(cfg_.lr));
    w.set_metadata(prefix + "beta1", to_text(cfg_.beta1));
    w.set_metadata(prefix + "beta2", to_text(cfg_.beta2));
    w.set_metadata(prefix + "eps", to_text(cfg_.eps));
    w.set_metadata(prefix + "weight_decay", to_text(cfg_.weight_decay));
    for (const slot& s : slots_) {
      w.add(prefix + "m." + s.name, host_copy(s.m));
      w.add(prefix + "v." + s.name, host_copy(s.v));
    }
  }

  void load_state(const io::safetensors_file& f, const params_t& params,
                  const std::string& prefix = "optim.") {
    check_same(params, "adamw::load_state");
    const std::string& file = f.source_name();
    const auto fail = [&](auto&&... parts) {
      throw io_error(attnres::detail::concat("adamw::load_state: '", file, "': ", parts...));
    };

    const auto& meta = f.metadata();
    if (const auto it = meta.find(prefix + "type"); it != meta.end() && it->second != "adamw")
      fail("metadata '", prefix, "type' is '", it->second, "', not 'adamw'");
    const auto step_it = meta.find(prefix + "step");
    if (step_it == meta.end()) fail("no metadata key '", prefix, "step' (not an AdamW checkpoint?)");
    std::int64_t step = -1;
    const std::string& text = step_it->second;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), step);
    if (ec != std::errc{} || end != text.data() + text.size() || step < 0)
      fail("metadata '", prefix, "step' is '", text, "', not a non-negative integer");

    // Every moment in the file must belong to a listed parameter.
    std::set<std::string, std::less<>> expected;
    for (const slot& s : slots_) {
      expected.insert(prefix + "m." + s.name);
      expected.insert(prefix + "v." + s.name);
    }
    for (const std::string& name : f.names()) {
      const bool is_moment = name.starts_with(prefix + "m.") || name.starts_with(prefix + "v.");
      if (is_moment && !expected.contains(name))
        fail("tensor '", name, "' is optimizer state for a parameter that is not in the list");
    }

    // Read everything before touching the optimizer (strong exception guarantee).
    std::vector<std::pair<tensor<T>, tensor<T>>> moments;
    moments.reserve(slots_.size());
    for (const slot& s : slots_) {
      const auto read = [&](const char* which, bool non_negative) {
        const std::string name = prefix + which + s.name;
        if (!f.contains(name))
          fail("no tensor '", name, "' (optimizer state of parameter '", s.name, "')");
        const io::tensor_info& ti = f.info(name);
        if (ti.shape != s.shape)
          fail("tensor '", name, "' has shape ", io::detail::shape_string(ti.shape), " but parameter '",
               s.name, "' has shape ", io::detail::shape_string(s.shape));
        tensor<T> t = f.get<T>(name);
        for (index_t i = 0; i < t.size(); ++i)
          if (!std::isfinite(t[i]) || (non_negative && t[i] < T(0)))
            fail("tensor '", name, "' element ", i, " is ", t[i], non_negative ? " (must be finite and >= 0)" : " (must be finite)");
        return t;
      };
      tensor<T> m = read("m.", false);
      tensor<T> v = read("v.", true);
      moments.emplace_back(std::move(m), std::move(v));
    }

    for (std::size_t i = 0; i < slots_.size(); ++i) {
      slots_[i].m = in_space(std::move(moments[i].first));
      slots_[i].v = in_space(std::move(moments[i].second));
    }
    step_ = step;
  }

 private:
  // Shortest decimal that reads back as the same double.
  static std::string to_text(double x) {
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof buf, x);
    return std::string(buf, r.ptr);
  }

  struct slot {
    std::string name;
    std::vector<index_t> shape;
    tensor_t m;  // first moment, shaped like the parameter
    tensor_t v;  // second moment
  };

  // The moments as host tensors for the file: the tensor itself on the host, a download otherwise.
  static decltype(auto) host_copy(const tensor_t& t) {
    if constexpr (std::is_same_v<tensor_t, tensor<T>>) {
      return (t);
    } else {
      tensor<T> h(t.shape());
      copy_to_host(space{}, t.data(), h.data(), t.size());
      return h;
    }
  }
  static tensor_t in_space(tensor<T>&& h) {
    if constexpr (std::is_same_v<tensor_t, tensor<T>>) {
      return std::move(h);
    } else {
      tensor_t d(h.shape());
      copy_from_host(space{}, h.data(), d.data(), h.size());
      return d;
    }
  }

  // The list must be the one the constructor saw: same length, names and shapes, in order.
  void check_same(const params_t& params, const char* where) const {
    expects<usage_error>(params.size() == slots_.size(), where, ": the parameter list has ",
                         params.size(), " entries but the optimizer was built for ", slots_.size());
    for (std::size_t i = 0; i < params.size(); ++i) {
      const auto& p = params[i];
      const slot& s = slots_[i];
      expects<usage_error>(p.name == s.name && p.shape == s.shape, where, ": parameter ", i, " is '",
                           p.name, "' ", io::detail::shape_string(p.shape),
                           " but the optimizer was built with '", s.name, "' ",
                           io::detail::shape_string(s.shape), " there");
      expects<usage_error>(p.size() == 0 || (p.value != nullptr && p.grad != nullptr), where,
                           ": parameter '", p.name, "' has no value or gradient buffer");
    }
  }

  adamw_config cfg_;
  std::vector<slot> slots_;
  std::int64_t step_ = 0;
};

}  // namespace attnres::train
