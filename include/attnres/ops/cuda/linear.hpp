#pragma once
// Linear, CUDA path: the three products of a layer as cuBLAS GEMMs. Contract: ops/linear.hpp, with
// device views. The row-major → column-major argument mapping (the transpose trick) is the plan
// of ops/cuda/row/gemm_plan.hpp, which the CPU tests run through a plain column-major GEMM.

#include <attnres/cuda/cublas.hpp>
#include <attnres/ops/cuda/launch.hpp>
#include <attnres/ops/cuda/row/gemm_plan.hpp>
#include <attnres/ops/reference/linear.hpp>  // linear_detail::check_*

namespace attnres::ops {

namespace cuda_detail {
template <class T>
const_matrix_view<T> shape_only(const_matrix_view<T, device_space> v) {
  return {nullptr, v.rows, v.cols, v.stride};  // for the shared shape checks: never dereferenced
}
template <class T>
const_matrix_view<T> shape_only_or_null(const_matrix_view<T, device_space> v) {
  return {v.data ? reinterpret_cast<const T*>(1) : nullptr, v.rows, v.cols, v.stride};  // only the null-ness is read
}

// Runs a plan on cuBLAS, every size checked against cuBLAS's int range first.
template <class T>
void run_gemm(const row::gemm_call<T>& g, const char* op) {
  cuda::gemm(g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, to_int(g.m, op, "m"),
             to_int(g.n, op, "n"), to_int(g.k, op, "k"), T(1), g.A, to_int(g.lda, op, "a row stride"), g.B,
             to_int(g.ldb, op, "a row stride"), g.beta, g.C, to_int(g.ldc, op, "a row stride"));
}
}  // namespace cuda_detail

template <class T>
void linear_forward(backend::cuda, no_deduce<const_matrix_view<T, device_space>> x /*(M,K)*/,
                    no_deduce<const_matrix_view<T, device_space>> W /*(N,K)*/, matrix_view<T, device_space> y /*(M,N)*/) {
  linear_detail::check_forward<T>(cuda_detail::shape_only<T>(x), cuda_detail::shape_only<T>(W),
                                  cuda_detail::shape_only<T>(y));
  const index_t M = x.rows, K = x.cols, N = W.rows;
  cuda_detail::to_int(M, "linear_forward", "M");
  cuda_detail::to_int(K, "linear_forward", "K");
  cuda_detail::to_int(N, "linear_forward", "N");
  if (M == 0 || N == 0) return;
  if (K == 0) {  // an empty sum: y = 0 (cuBLAS would leave C untouched)
    cuda::check(cudaMemset2D(y.data, y.stride * sizeof(T), 0, N * sizeof(T), M), "cudaMemset2D");
    return;
  }
  cuda_detail::run_gemm(row::linear_forward_plan<T>(x.data, x.stride, W.data, W.stride, y.data, y.stride, M, K, N),
                        "linear_forward");
}

// y_j = x W_jᵀ for each target j: one cuBLAS call each (the streams run them in order anyway)
template <class T, std::size_t J>
void linear_forward_shared_input(backend::cuda, no_deduce<const_matrix_view<T, device_space>> x /*(M,K)*/,
                                 const std::array<linear_target<T, device_space>, J>& targets) {
  for (const auto& t : targets) linear_forward<T>(backend::cuda{}, x, t.W, t.y);
}

template <class T>
void linear_backward(backend::cuda, no_deduce<const_matrix_view<T, device_space>> x /*(M,K)*/,
                     no_deduce<const_matrix_view<T, device_space>> W /*(N,K)*/,
                     no_deduce<const_matrix_view<T, device_space>> dy /*(M,N)*/,
                     matrix_view<T, device_space> dx /*(M,K) or null*/, matrix_view<T, device_space> dW /*(N,K) or null*/) {
  linear_detail::check_backward<T>(cuda_detail::shape_only<T>(x), cuda_detail::shape_only<T>(W),
                                   cuda_detail::shape_only<T>(dy), cuda_detail::shape_only_or_null<T>(dx),
                                   cuda_detail::shape_only_or_null<T>(dW));
  const index_t M = x.rows, K = x.cols, N = W.rows;
  cuda_detail::to_int(M, "linear_backward", "M");
  cuda_detail::to_int(K, "linear_backward", "K");
  cuda_detail::to_int(N, "linear_backward", "N");
  if (M == 0 || N == 0 || K == 0) return;  // every product is empty: nothing accumulates
  if (dx.data)
    cuda_detail::run_gemm(row::linear_dx_plan<T>(W.data, W.stride, dy.data, dy.stride, dx.data, dx.stride, M, K, N),
                          "linear_backward");
  if (dW.data)
    cuda_detail::run_gemm(row::linear_dW_plan<T>(x.data, x.stride, dy.data, dy.stride, dW.data, dW.stride, M, K, N),
                          "linear_backward");
}

ATTNRES_CUDA_REJECT_HOST_VIEWS(linear_forward)
ATTNRES_CUDA_REJECT_HOST_VIEWS(linear_backward)

}  // namespace attnres::ops
