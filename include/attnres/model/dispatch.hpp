#pragma once
// From names to types: a command line or a file's metadata names the architecture at run
// time (residual "block", blocks 4, mlp "swiglu", norm "rmsnorm"), while LM takes it at compile
// time. with_lm_type calls f(std::type_identity<LM<…>>{}) for the matching instantiation.
// Only the block counts listed in supported_block_counts are instantiated (each one is a
// separate LM type); others are refused with an error that lists them.

#include <attnres/core/error.hpp>
#include <attnres/model/config.hpp>
#include <attnres/model/lm.hpp>

#include <optional>
#include <string>
#include <type_traits>
#include <utility>

namespace attnres {

inline constexpr int supported_block_counts[] = {1, 2, 4, 8};

namespace detail {
inline std::string unsupported(int blocks) {
  std::string s = "BlockAttnRes<" + std::to_string(blocks) + "> is not built into this program; supported block counts:";
  for (int n : supported_block_counts) s += " " + std::to_string(n);
  return s + " (and full, which is N = L)";
}
// FixedNorm = void: dispatch on a.norm too; otherwise only FixedNorm is instantiated (and a
// file asking for another norm is refused) — fewer instantiations for programs that need one.
template <class Residual, class T, class Backend, class FixedNorm, class F>
decltype(auto) with_norm_mlp(const architecture& a, F&& f) {
  auto with_mlp = [&]<class Norm>(std::type_identity<Norm>) -> decltype(auto) {
    if (a.mlp == "gelu") return f(std::type_identity<LM<Residual, Norm, GELU, Backend, T>>{});
    expects<config_error>(a.mlp == "swiglu", "unknown MLP '", a.mlp, "' (expected swiglu or gelu)");
    return f(std::type_identity<LM<Residual, Norm, SwiGLU, Backend, T>>{});
  };
  if constexpr (!std::is_void_v<FixedNorm>) {
    expects<config_error>(a.norm == FixedNorm::name, "this program is built for ", FixedNorm::name,
                          " models; the model uses ", a.norm);
    return with_mlp(std::type_identity<FixedNorm>{});
  } else {
    if (a.norm == "layernorm") return with_mlp(std::type_identity<LayerNorm>{});
    expects<config_error>(a.norm == "rmsnorm", "unknown norm '", a.norm, "' (expected rmsnorm or layernorm)");
    return with_mlp(std::type_identity<RMSNorm>{});
  }
}

template <class T, class Backend, class FixedNorm, class F, int... Ns>
decltype(auto) with_blocks(const architecture& a, F&& f, std::integer_sequence<int, Ns...>) {
  using R = decltype(with_norm_mlp<BlockAttnRes<1>, T, Backend, FixedNorm>(a, f));
  if constexpr (std::is_void_v<R>) {
    bool found = false;
    ((a.blocks == Ns ? (with_norm_mlp<BlockAttnRes<Ns>, T, Backend, FixedNorm>(a, f), found = true) : false), ...);
    if (!found) throw config_error(unsupported(a.blocks));
  } else {
    std::optional<R> out;
    ((a.blocks == Ns ? (out.emplace(with_norm_mlp<BlockAttnRes<Ns>, T, Backend, FixedNorm>(a, f)), true) : false), ...);
    if (!out) throw config_error(unsupported(a.blocks));
    return std::move(*out);
  }
}

}  // namespace detail

template <class T = float, class Backend = default_backend, class FixedNorm = void, class F>
decltype(auto) with_lm_type(const architecture& a, F&& f) {
  if (a.residual == "sum") return detail::with_norm_mlp<Sum, T, Backend, FixedNorm>(a, f);
  if (a.residual == "full") return detail::with_norm_mlp<FullAttnRes, T, Backend, FixedNorm>(a, f);
  expects<config_error>(a.residual == "block", "unknown residual '", a.residual, "' (expected sum, full or block)");
  return detail::with_blocks<T, Backend, FixedNorm>(a, f, std::integer_sequence<int, 1, 2, 4, 8>{});
}

}  // namespace attnres
