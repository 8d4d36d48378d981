#pragma once
// train/grad_clip — the global L2 norm of all gradients, and clipping it (as
// torch.nn.utils.clip_grad_norm_ does).
//
//   global_grad_norm(params) -> ‖g‖ = sqrt(Σ_params Σ_i g_i²)
//       requires: every param's grad points at size() values.
//       ensures:  the sum is accumulated in double, one parameter at a time in list order, so the
//                 result does not depend on how the list is used elsewhere; within a parameter the
//                 backend's ops::sum_of_squares decides the order (deterministic for a given
//                 thread count). Throws numeric_error naming the first parameter at which the
//                 running sum stops being finite.
//
//   clip_grad_norm(params, max_norm) -> ‖g‖ before clipping
//       when max_norm / (‖g‖ + 1e-6) < 1, multiplies every grad by that factor (torch's rule, so
//       grads are scaled exactly when ‖g‖ > max_norm − 1e-6); otherwise leaves grads untouched.
//       max_norm must be positive and finite (config_error).
//
// Both take an optional backend tag (default backend::cpu) selecting the ops::sum_of_squares and
// ops::scale overloads: clip_grad_norm(params, 1.0, backend::reference{}). The gradients must be
// in that backend's memory space (a device param_list needs backend::cuda).

#include <attnres/core/backend.hpp>
#include <attnres/core/error.hpp>
#include <attnres/nn/parameter.hpp>
#include <attnres/ops/adamw.hpp>

#include <cmath>
#include <type_traits>

namespace attnres::train {

template <class Backend = backend::cpu, class T, class Space>
double global_grad_norm(const param_list<T, Space>& params, Backend = {}) {
  static_assert(std::is_same_v<Space, typename backend_traits<Backend>::memory_space>,
                "global_grad_norm: the gradients are not in the backend's memory space");
  double total = 0.0;
  for (const param_ref<T, Space>& p : params) {
    const index_t n = p.size();
    if (n == 0) continue;
    expects<usage_error>(p.grad != nullptr, "global_grad_norm: parameter '", p.name,
                         "' has no gradient buffer");
    const double s = ops::sum_of_squares(Backend{}, static_cast<const T*>(p.grad), n);
    expects<numeric_error>(std::isfinite(s),
                           "gradient norm is not finite (NaN or Inf in a gradient: ", p.name, ")");
    total += s;
    expects<numeric_error>(std::isfinite(total),
                           "gradient norm is not finite (the sum of squares overflows at ", p.name,
                           ")");
  }
  return std::sqrt(total);
}

template <class Backend = backend::cpu, class T, class Space>
double clip_grad_norm(const param_list<T, Space>& params, double max_norm, Backend b = {}) {
  expects<config_error>(std::isfinite(max_norm) && max_norm > 0.0,
                        "clip_grad_norm: max_norm must be positive and finite, got ", max_norm);
  const double norm = global_grad_norm(params, b);
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0)
    for (const param_ref<T, Space>& p : params)
      if (p.size() > 0) ops::scale(Backend{}, p.grad, p.size(), static_cast<T>(coef));
  return norm;
}

}  // namespace attnres::train
