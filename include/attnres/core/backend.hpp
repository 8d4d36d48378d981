#pragma once
// Backends are tag types with traits (the xsimd / CUTLASS idea).
//
//   backend::reference   plain single-threaded loops, templated on the scalar: the oracle.
//   backend::cpu         Eigen + xsimd + OpenMP. Derives from reference, so an op that has no
//                        cpu overload resolves to the reference one (overload resolution picks
//                        the most-derived tag that has an implementation).
//   backend::cuda        device memory space; no fallback (its ops live in <attnres/cuda.hpp>).
//
// Ops are free functions overloaded on the tag: op(backend::cpu{}, ...). Code generic over the
// backend calls op(Backend{}, ...) and never names a concrete one.

#include <attnres/core/memory_space.hpp>

#include <concepts>

namespace attnres::backend {

struct reference {
  static constexpr const char* name = "reference";
};

struct cpu : reference {
  static constexpr const char* name = "cpu";
};

struct cuda {
  static constexpr const char* name = "cuda";
};

}  // namespace attnres::backend

namespace attnres {

// backend_traits<B>: what a backend is made of. The primary template is deliberately
// undefined, so an unknown tag fails loudly at compile time.
template <class Backend>
struct backend_traits;

template <>
struct backend_traits<backend::reference> {
  using memory_space = host_space;
  static constexpr bool is_parallel = false;  // the oracle stays single-threaded
  static constexpr bool uses_simd = false;
  static constexpr bool available() { return true; }
};

template <>
struct backend_traits<backend::cpu> {
  using memory_space = host_space;
  static constexpr bool is_parallel = true;
  static constexpr bool uses_simd = true;
  static constexpr bool available() { return true; }
};

// available() for cuda is a run-time question (is there a device?), defined by the CUDA
// backend headers (<attnres/cuda.hpp>); host-only code that calls it fails to link.
template <>
struct backend_traits<backend::cuda> {
  using memory_space = device_space;
  static constexpr bool is_parallel = true;
  static constexpr bool uses_simd = false;
  static bool available();
};

// A Backend is a tag with traits and a name.
template <class B>
concept Backend = requires {
  typename backend_traits<B>::memory_space;
  { B::name } -> std::convertible_to<const char*>;
};

// The default backend for host code.
using default_backend = backend::cpu;

}  // namespace attnres
