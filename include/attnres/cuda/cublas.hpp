#pragma once
// cuBLAS for attnres: one handle per host thread, errors as attnres exceptions, and the
// row-major GEMM the linear layers need written in cuBLAS's column-major terms.
//
// The transpose trick: a row-major (r × c) matrix with row stride s is, to cuBLAS, the
// column-major (c × r) matrix with leading dimension s — its transpose. So row-major
// C = op(A)·op(B) is computed as column-major Cᵀ = op(B)ᵀ·op(A)ᵀ, swapping the operands.

#include <attnres/cuda/runtime.hpp>

#include <cublas_v2.h>

namespace attnres::cuda {

inline const char* cublas_status_name(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED (no device or no driver?)";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED (out of device memory)";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "unknown cuBLAS status";
  }
}

inline void check(cublasStatus_t status, const char* call) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw cuda_error(detail::concat("attnres cuda: ", call, " failed: ", cublas_status_name(status)), cudaErrorUnknown);
}

// The calling thread's cuBLAS handle, created on first use (on the default stream).
inline cublasHandle_t cublas_handle() {
  struct holder {
    cublasHandle_t h = nullptr;
    holder() {
      require_device("cuBLAS");
      check(cublasCreate(&h), "cublasCreate");
    }
    ~holder() {
      if (h) cublasDestroy(h);
    }
  };
  thread_local holder hold;
  return hold.h;
}

// Column-major GEMM for float and double: C = α op(A) op(B) + β C.
inline void gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha, const float* A, int lda,
                 const float* B, int ldb, float beta, float* C, int ldc) {
  check(cublasSgemm(cublas_handle(), ta, tb, m, n, k, &alpha, A, lda, B, ldb, &beta, C, ldc), "cublasSgemm");
}
inline void gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, double alpha, const double* A, int lda,
                 const double* B, int ldb, double beta, double* C, int ldc) {
  check(cublasDgemm(cublas_handle(), ta, tb, m, n, k, &alpha, A, lda, B, ldb, &beta, C, ldc), "cublasDgemm");
}

}  // namespace attnres::cuda
