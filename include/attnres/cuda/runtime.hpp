#pragma once
// The CUDA runtime as attnres sees it: every failing CUDA call becomes an attnres exception that
// names the call, out of device memory gets its own exception with the bytes asked for, and
// backend_traits<backend::cuda>::available() asks at run time whether a device exists.
//
// Needs the CUDA toolkit: include it through <attnres/cuda.hpp> from a .cu file compiled by
// nvcc (or define ATTNRES_CUDA when a host compiler sees cuda_runtime.h and no kernels).

#if !defined(__CUDACC__) && !defined(ATTNRES_CUDA)
#error "attnres/cuda/runtime.hpp needs CUDA: compile with nvcc (configure with -DATTNRES_CUDA=ON or `cmake --preset cuda`); host code uses <attnres/attnres.hpp>"
#endif

#include <attnres/core/backend.hpp>
#include <attnres/core/error.hpp>

#include <cuda_runtime.h>

#include <cstddef>
#include <string>

namespace attnres::cuda {

// A CUDA call that failed: the message names the call and CUDA's own description.
struct cuda_error : error {
  cuda_error(const std::string& what, cudaError_t code) : error(what), code(code) {}
  cudaError_t code;
};

// A device allocation that did not fit; bytes is what was asked for.
struct device_memory_error : cuda_error {
  device_memory_error(const std::string& what, std::size_t bytes)
      : cuda_error(what, cudaErrorMemoryAllocation), bytes(bytes) {}
  std::size_t bytes;
};

// Throws cuda_error naming `call` when status is not cudaSuccess.
inline void check(cudaError_t status, const char* call) {
  if (status == cudaSuccess) return;
  cudaGetLastError();  // clear the sticky-free error state so the next call starts clean
  throw cuda_error(detail::concat("attnres cuda: ", call, " failed: ", cudaGetErrorName(status), " (",
                                  cudaGetErrorString(status), ")"),
                   status);
}

// Number of CUDA devices; 0 when there is none or no usable driver (never throws for those).
inline int device_count() {
  int n = 0;
  const cudaError_t status = cudaGetDeviceCount(&n);
  if (status == cudaErrorNoDevice || status == cudaErrorInsufficientDriver) {
    cudaGetLastError();
    return 0;
  }
  check(status, "cudaGetDeviceCount");
  return n;
}

// Throws cuda_error with a clear message when there is no device to run on.
inline void require_device(const char* what) {
  int n = 0;
  const cudaError_t status = cudaGetDeviceCount(&n);
  if (status == cudaSuccess && n > 0) return;
  cudaGetLastError();
  throw cuda_error(detail::concat("attnres cuda: ", what, " needs a CUDA device, but none is available (",
                                  status == cudaSuccess ? "cudaGetDeviceCount found 0 devices" : cudaGetErrorString(status),
                                  "); use backend::cpu on this machine"),
                   status == cudaSuccess ? cudaErrorNoDevice : status);
}

// Checks that the kernel just launched was accepted (bad configuration, no device, ...).
inline void check_launch(const char* kernel) {
  check(cudaGetLastError(), kernel);
}

// Waits for all device work and reports an error raised asynchronously by a kernel.
inline void synchronize() { check(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }

}  // namespace attnres::cuda

// Declared (not defined) in core/backend.hpp, so host-only code cannot ask without the runtime.
inline bool attnres::backend_traits<attnres::backend::cuda>::available() { return cuda::device_count() > 0; }
