#pragma once
// What every CUDA op shares: the launch shape (one thread per row / token / element), the limits
// checked before a launch, device scratch, and the compile-time refusal of host views.

#if !defined(__CUDACC__)
#error "attnres/ops/cuda/*.hpp contain CUDA kernels: compile with nvcc (configure with -DATTNRES_CUDA=ON or `cmake --preset cuda`); host code uses <attnres/attnres.hpp>"
#endif

// Generic code that calls ops by qualified name (nn/, residual/, model/, train/) defines
// ATTNRES_BACKEND_GENERIC_CODE; it must see the CUDA overloads declared before it.
#if defined(ATTNRES_BACKEND_GENERIC_CODE)
#error "include <attnres/cuda.hpp> before any other attnres header (the model, layers, residual policies and trainer must see the CUDA ops declared first; see docs/cuda.md)"
#endif

#include <attnres/core/backend.hpp>
#include <attnres/core/error.hpp>
#include <attnres/core/tensor.hpp>
#include <attnres/cuda/device_tensor.hpp>
#include <attnres/cuda/runtime.hpp>

#include <cuda_runtime.h>

#include <climits>
#include <cstddef>
#include <cstring>
#include <type_traits>
#include <vector>

namespace attnres::ops::cuda_detail {

// Threads per block of the row kernels: each thread runs one row function to completion.
inline constexpr int block_threads = 128;

// Blocks for `count` threads, refusing (config_error, before anything runs) a count whose grid
// would exceed CUDA's limit of 2³¹ − 1 blocks.
inline unsigned grid_for(index_t count, const char* op) {
  const index_t blocks = (count + block_threads - 1) / block_threads;
  expects<config_error>(blocks <= INT_MAX, op, " (cuda): ", count, " threads need ", blocks,
                        " blocks, more than CUDA's grid limit of 2^31 - 1; split the batch");
  return static_cast<unsigned>(blocks);
}

// cuBLAS and the kernels' 32-bit sizes: a dimension beyond int range is a config too large.
inline int to_int(index_t v, const char* op, const char* what) {
  expects<config_error>(v >= 0 && v <= INT_MAX, op, " (cuda): ", what, " = ", v,
                        " exceeds the 32-bit range of cuBLAS / kernel sizes (2^31 - 1)");
  return static_cast<int>(v);
}

// A grow-only device buffer per host thread, reused across calls (no cudaMalloc per launch).
// Used in two roles: argument arrays (descriptors the kernels read) and scratch.
class device_buffer {
 public:
  ~device_buffer() {
    if (p_) cudaFree(p_);  // at exit the context may be gone already; nothing to report then
  }
  void* get(std::size_t bytes) {
    if (bytes > cap_) {
      if (p_) cudaFree(p_);
      p_ = nullptr;
      cap_ = 0;
      p_ = cuda::device_allocate(bytes);
      cap_ = bytes;
    }
    return p_;
  }

 private:
  void* p_ = nullptr;
  std::size_t cap_ = 0;
};

inline device_buffer& arg_buffer() {
  thread_local device_buffer b;
  return b;
}
inline device_buffer& scratch_buffer() {
  thread_local device_buffer b;
  return b;
}

// Copies host arrays of trivially copyable descriptors into one device block, in order; the
// returned pointers stay valid until the next call on this thread. Kernels on the default
// stream run in order with this synchronous copy, so a previous launch's arguments are never
// overwritten while it reads them.
class device_args {
 public:
  template <class X>
  std::size_t add(const X* host, std::size_t count) {
    static_assert(std::is_trivially_copyable_v<X>);
    const std::size_t off = (bytes_.size() + alignof(std::max_align_t) - 1) / alignof(std::max_align_t) * alignof(std::max_align_t);
    bytes_.resize(off + count * sizeof(X));
    if (count) std::memcpy(bytes_.data() + off, host, count * sizeof(X));
    return off;
  }
  void upload() {
    base_ = static_cast<unsigned char*>(arg_buffer().get(bytes_.size()));
    if (!bytes_.empty()) cuda::check(cudaMemcpy(base_, bytes_.data(), bytes_.size(), cudaMemcpyHostToDevice), "cudaMemcpy (kernel arguments)");
  }
  template <class X>
  const X* at(std::size_t off) const {
    return reinterpret_cast<const X*>(base_ + off);
  }

 private:
  std::vector<unsigned char> bytes_;
  unsigned char* base_ = nullptr;
};

// ---- memory spaces are part of the type ---------------------------------------------------
// Every CUDA op takes matrix_view<T, device_space>. A host view does not convert, and each op
// has a constrained overload that turns the mistake into one readable static_assert.
template <class X>
inline constexpr bool is_host_view = false;
template <class T>
inline constexpr bool is_host_view<matrix_view<T, host_space>> = true;

template <class... Args>
concept any_host_view = (is_host_view<std::remove_cvref_t<Args>> || ...);

template <class...>
inline constexpr bool dependent_false = false;

}  // namespace attnres::ops::cuda_detail

// Declares the refusal overload of `op` for backend::cuda. Only chosen when an argument is a host
// matrix_view, so it never competes with the real overloads.
#define ATTNRES_CUDA_REJECT_HOST_VIEWS(op)                                                                    \
  template <class... Args>                                                                                    \
    requires ::attnres::ops::cuda_detail::any_host_view<Args...>                                              \
  void op(::attnres::backend::cuda, Args&&...) {                                                              \
    static_assert(::attnres::ops::cuda_detail::dependent_false<Args...>,                                      \
                  #op "(backend::cuda, ...): a host matrix_view was passed; CUDA ops read and write device "  \
                      "memory only (use cuda::device_tensor<T>::mat(), and cuda::upload / cuda::download)"); \
  }
