#pragma once
// The three GEMMs of a linear layer, as column-major BLAS calls on row-major views: the plan the
// CUDA path hands to cuBLAS, kept free of CUDA types so the CPU tests can run it through a plain
// column-major GEMM and compare with the reference linear op (tests/cuda/test_gemm_plan.cpp).
//
// The transpose trick: a row-major (r × c) matrix with row stride s is, read column-major, the
// (c × r) matrix with leading dimension s — its transpose. So row-major C = A·B is computed as
// column-major Cᵀ = Bᵀ·Aᵀ, with the operands swapped. For y = x Wᵀ (x (M,K), W (N,K), y (M,N)):
//   forward   yᵀ  = W · xᵀ           gemm(T, N, m=N, n=M, k=K, A=W, B=x)
//   dx        dxᵀ += Wᵀ · dyᵀ        gemm(N, N, m=K, n=M, k=N, A=W, B=dy)
//   dW        dWᵀ += xᵀ · dy         gemm(N, T, m=K, n=N, k=M, A=x, B=dy)

#include <attnres/ops/cuda/row/hd.hpp>

namespace attnres::ops::row {

// C = α op(A) op(B) + β C in column-major terms: op(A) is (m × k), op(B) is (k × n), C is (m × n).
template <class T>
struct gemm_call {
  bool trans_a, trans_b;
  index_t m, n, k;
  const T* A;
  index_t lda;
  const T* B;
  index_t ldb;
  T beta;
  T* C;
  index_t ldc;
};

// y = x Wᵀ (y overwritten)
template <class T>
gemm_call<T> linear_forward_plan(const T* x, index_t sx, const T* W, index_t sW, T* y, index_t sy, index_t M,
                                 index_t K, index_t N) {
  return {true, false, N, M, K, W, sW, x, sx, T(0), y, sy};
}

// dx += dy W
template <class T>
gemm_call<T> linear_dx_plan(const T* W, index_t sW, const T* dy, index_t sdy, T* dx, index_t sdx, index_t M, index_t K,
                            index_t N) {
  return {false, false, K, M, N, W, sW, dy, sdy, T(1), dx, sdx};
}

// dW += dyᵀ x
template <class T>
gemm_call<T> linear_dW_plan(const T* x, index_t sx, const T* dy, index_t sdy, T* dW, index_t sdW, index_t M, index_t K,
                            index_t N) {
  return {false, true, K, N, M, x, sx, dy, sdy, T(1), dW, sdW};
}

// A plain column-major GEMM with BLAS semantics (α = 1): what cuBLAS computes for a gemm_call.
// Host-only in practice (the tests run it); O(m·n·k).
template <class T>
void column_major_gemm(const gemm_call<T>& g) {
  for (index_t j = 0; j < g.n; ++j)
    for (index_t i = 0; i < g.m; ++i) {
      T s = 0;
      for (index_t p = 0; p < g.k; ++p) {
        const T a = g.trans_a ? g.A[p + i * g.lda] : g.A[i + p * g.lda];  // op(A)(i,p)
        const T b = g.trans_b ? g.B[j + p * g.ldb] : g.B[p + j * g.ldb];  // op(B)(p,j)
        s += a * b;
      }
      T& c = g.C[i + j * g.ldc];
      c = (g.beta == T(0) ? T(0) : g.beta * c) + s;
    }
}

}  // namespace attnres::ops::row
