#pragma once
// Linear, CUDA path: the three products of a layer as cuBLAS GEMMs (the transpose trick of
// cuda/cublas.hpp). Contract: ops/linear.hpp, with device views. Row-major y = x Wᵀ is, in
// cuBLAS's column-major view (a row-major matrix is its own transpose there):
//   forward    yᵀ  = W xᵀ          gemm(T, N, m=N, n=M, k=K, A=W, B=x)
//   dx        dxᵀ += Wᵀ dyᵀ        gemm(N, N, m=K, n=M, k=N, A=W, B=dy)
//   dW        dWᵀ += xᵀ dy         gemm(N, T, m=K, n=N, k=M, A=x, B=dy)

#include <attnres/cuda/cublas.hpp>
#include <attnres/ops/cuda/launch.hpp>
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
}  // namespace cuda_detail

template <class T>
void linear_forward(backend::cuda, no_deduce<const_matrix_view<T, device_space>> x /*(M,K)*/,
                    no_deduce<const_matrix_view<T, device_space>> W /*(N,K)*/, matrix_view<T, device_space> y /*(M,N)*/) {
  linear_detail::check_forward<T>(cuda_detail::shape_only<T>(x), cuda_detail::shape_only<T>(W),
                                  cuda_detail::shape_only<T>(y));
  const int M = cuda_detail::to_int(x.rows, "linear_forward", "M"), K = cuda_detail::to_int(x.cols, "linear_forward", "K"),
            N = cuda_detail::to_int(W.rows, "linear_forward", "N");
  if (M == 0 || N == 0) return;
  if (K == 0) {  // an empty sum: y = 0 (cuBLAS would leave C untouched)
    cuda::check(cudaMemset2D(y.data, y.stride * sizeof(T), 0, N * sizeof(T), M), "cudaMemset2D");
    return;
  }
  cuda::gemm(CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, T(1), W.data, cuda_detail::to_int(W.stride, "linear_forward", "stride"),
             x.data, cuda_detail::to_int(x.stride, "linear_forward", "stride"), T(0), y.data,
             cuda_detail::to_int(y.stride, "linear_forward", "stride"));
}

template <class T>
void linear_backward(backend::cuda, no_deduce<const_matrix_view<T, device_space>> x /*(M,K)*/,
                     no_deduce<const_matrix_view<T, device_space>> W /*(N,K)*/,
                     no_deduce<const_matrix_view<T, device_space>> dy /*(M,N)*/,
                     matrix_view<T, device_space> dx /*(M,K) or null*/, matrix_view<T, device_space> dW /*(N,K) or null*/) {
  linear_detail::check_backward<T>(cuda_detail::shape_only<T>(x), cuda_detail::shape_only<T>(W),
                                   cuda_detail::shape_only<T>(dy), cuda_detail::shape_only_or_null<T>(dx),
                                   cuda_detail::shape_only_or_null<T>(dW));
  const int M = cuda_detail::to_int(x.rows, "linear_backward", "M"), K = cuda_detail::to_int(x.cols, "linear_backward", "K"),
            N = cuda_detail::to_int(W.rows, "linear_backward", "N");
  if (M == 0 || N == 0 || K == 0) return;  // every product is empty: nothing accumulates
  if (dx.data)
    cuda::gemm(CUBLAS_OP_N, CUBLAS_OP_N, K, M, N, T(1), W.data, cuda_detail::to_int(W.stride, "linear_backward", "stride"),
               dy.data, cuda_detail::to_int(dy.stride, "linear_backward", "stride"), T(1), dx.data,
               cuda_detail::to_int(dx.stride, "linear_backward", "stride"));
  if (dW.data)
    cuda::gemm(CUBLAS_OP_N, CUBLAS_OP_T, K, N, M, T(1), x.data, cuda_detail::to_int(x.stride, "linear_backward", "stride"),
               dy.data, cuda_detail::to_int(dy.stride, "linear_backward", "stride"), T(1), dW.data,
               cuda_detail::to_int(dW.stride, "linear_backward", "stride"));
}

ATTNRES_CUDA_REJECT_HOST_VIEWS(linear_forward)
ATTNRES_CUDA_REJECT_HOST_VIEWS(linear_backward)

}  // namespace attnres::ops
