#pragma once
// Causal attention, cpu path: one task per (sequence, head), in parallel over batch·H; within a
// task, Eigen products on the strided (T, Dh) head blocks, mapped in place (no copies). The
// causal mask makes every product half empty, so none computes the upper triangle in full:
// S = QKᵀ and dP = dO Vᵀ are GEMMs over row blocks against only the keys they can see, and P,
// dS enter the other four products as triangular matrices (Eigen's TRMM). Tested equal to the
// reference on awkward sizes (tests/ops/test_attention_ops.cpp).
//
// Threads: we parallelise over (b, h), so Eigen must not fork threads of its own inside a task.
// In Eigen 3.4 only the general GEMM can go parallel (products/Parallelizer.h, parallelize_gemm),
// and it runs single-threaded when `omp_get_num_threads() > 1`, i.e. inside an active OpenMP
// parallel region such as ours (it tests the team size, not omp_in_parallel()). The triangular
// products (TriangularMatrixMatrix.h) never call parallelize_gemm. So no task nests a parallel
// region, and we need not touch the global Eigen::setNbThreads. When there is a single task
// (batch·H = 1), parallel_for runs it outside any region and Eigen's GEMM may use the threads.

#include <attnres/core/backend.hpp>
#include <attnres/core/parallel.hpp>
#include <attnres/ops/reference/causal_attention.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <type_traits>

namespace attnres::ops {

namespace cpu_detail {
template <class T>
using row_matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
// One head's (T, Dh) block of a (B·T, H·Dh) activation, or a (T,T) slice of probs.
template <class T>
using head_map = Eigen::Map<row_matrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <class T>
using const_head_map = Eigen::Map<const row_matrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;

// Head h of sequence b: rows [b·T, (b+1)·T), columns [h·Dh, (h+1)·Dh).
template <class V>
auto head_block(V view, index_t b, index_t h, index_t seq_len, index_t Dh) {
  using T = typename V::value_type;
  using Map = std::conditional_t<std::is_const_v<std::remove_pointer_t<decltype(view.data)>>, const_head_map<T>,
                                 head_map<T>>;
  return Map(view.row(b * seq_len) + h * Dh, seq_len, Dh, Eigen::OuterStride<>(view.stride));
}

// dst(i, j) = a_i · b_j for j ≤ i: row blocks of queries against only the keys they can see,
// about half the flops of the full GEMM for long sequences. Entries above the diagonal inside a
// diagonal block are computed too and are garbage to the caller. (Eigen's
// `triangularView<Lower>() = a * bᵀ` computes only the triangle but measured 2–3× slower than
// the full GEMM here.)
template <class Dst, class A, class B>
void causal_product(Dst& dst /*(T,T)*/, const A& a /*(T,Dh)*/, const B& b /*(T,Dh)*/) {
  constexpr index_t block = 64;
  const index_t n = dst.rows();
  for (index_t i0 = 0; i0 < n; i0 += block) {
    const index_t rows = std::min(block, n - i0), cols = i0 + rows;
    dst.block(i0, 0, rows, cols).noalias() = a.middleRows(i0, rows) * b.topRows(cols).transpose();
  }
}
}  // namespace cpu_detail

template <class T>
void causal_attention_forward(backend::cpu, no_deduce<const_matrix_view<T>> q /*(B·T, H·Dh)*/,
                              no_deduce<const_matrix_view<T>> k /*(B·T, H·Dh)*/,
                              no_deduce<const_matrix_view<T>> v /*(B·T, H·Dh)*/, index_t batch, index_t seq_len,
                              index_t H, matrix_view<T> out /*(B·T, H·Dh)*/, T* probs /*(B, H, T, T)*/) {
  using namespace cpu_detail;
  // (a named list, not a braced argument: nvcc's front end mangles the latter)
  const std::initializer_list<detail::view_shape> views = {
      {"q", q.rows, q.cols}, {"k", k.rows, k.cols}, {"v", v.rows, v.cols}, {"out", out.rows, out.cols}};
  const index_t Dh = detail::attention_check("causal_attention_forward", batch, seq_len, H, views);
  expects<shape_error>(probs != nullptr || batch == 0, "causal_attention_forward: probs is null");
  const T scale = T(1) / std::sqrt(T(Dh));
  parallel_for(0, batch * H, [&](index_t task) {
    const index_t b = task / H, h = task % H;
    const auto Q = head_block(q, b, h, seq_len, Dh);  // (T,Dh)
    const auto K = head_block(k, b, h, seq_len, Dh);  // (T,Dh)
    const auto V = head_block(v, b, h, seq_len, Dh);  // (T,Dh)
    auto O = head_block(out, b, h, seq_len, Dh);      // (T,Dh)
    head_map<T> P(probs + task * seq_len * seq_len, seq_len, seq_len, Eigen::OuterStride<>(seq_len));  // (T,T)
    causal_product(P, Q, K);  // q_i·k_j for j ≤ i
    for (index_t i = 0; i < seq_len; ++i) {
      auto row = P.row(i).head(i + 1);  // (i+1)
      // softmax(scale·s) = exp(scale·(s − max s)) / Σ: the max shift keeps exp from overflowing
      const T m = row.maxCoeff();
      row = ((row.array() - m) * scale).exp().matrix();
      row *= T(1) / row.sum();
      P.row(i).tail(seq_len - 1 - i).setZero();
    }
    O.noalias() = P.template triangularView<Eigen::Lower>() * V;
  });
}

template <class T>
void causal_attention_backward(backend::cpu, no_deduce<const_matrix_view<T>> q /*(B·T, H·Dh)*/,
                               no_deduce<const_matrix_view<T>> k /*(B·T, H·Dh)*/,
                               no_deduce<const_matrix_view<T>> v /*(B·T, H·Dh)*/, const T* probs /*(B, H, T, T)*/,
                               no_deduce<const_matrix_view<T>> dout /*(B·T, H·Dh)*/, index_t batch, index_t seq_len,
                               index_t H, matrix_view<T> dq /*(B·T, H·Dh)*/, matrix_view<T> dk /*(B·T, H·Dh)*/,
                               matrix_view<T> dv /*(B·T, H·Dh)*/) {
  using namespace cpu_detail;
  const std::initializer_list<detail::view_shape> views = {
      {"q", q.rows, q.cols},     {"k", k.rows, k.cols},     {"v", v.rows, v.cols}, {"dout", dout.rows, dout.cols},
      {"dq", dq.rows, dq.cols}, {"dk", dk.rows, dk.cols}, {"dv", dv.rows, dv.cols}};
  const index_t Dh = detail::attention_check("causal_attention_backward", batch, seq_len, H, views);
  expects<shape_error>(probs != nullptr || batch == 0, "causal_attention_backward: probs is null");
  const T scale = T(1) / std::sqrt(T(Dh));
  // One (T,T) scratch per chunk of tasks, reused across its tasks.
  parallel_chunks(batch * H, 1, [&](index_t, index_t begin, index_t end) {
    row_matrix<T> dS(seq_len, seq_len);  // (T,T) dP, then dS in place; only the lower triangle is used
    for (index_t task = begin; task < end; ++task) {
      const index_t b = task / H, h = task % H;
      const auto Q = head_block(q, b, h, seq_len, Dh);      // (T,Dh)
      const auto K = head_block(k, b, h, seq_len, Dh);      // (T,Dh)
      const auto V = head_block(v, b, h, seq_len, Dh);      // (T,Dh)
      const auto dO = head_block(dout, b, h, seq_len, Dh);  // (T,Dh)
      auto dQ = head_block(dq, b, h, seq_len, Dh);          // (T,Dh)
      auto dK = head_block(dk, b, h, seq_len, Dh);          // (T,Dh)
      auto dV = head_block(dv, b, h, seq_len, Dh);          // (T,Dh)
      const_head_map<T> P(probs + task * seq_len * seq_len, seq_len, seq_len, Eigen::OuterStride<>(seq_len));  // (T,T)
      causal_product(dS, dO, V);  // dP_ij = dO_i·v_j for j ≤ i
      for (index_t i = 0; i < seq_len; ++i) {
        auto ds = dS.row(i).head(i + 1);      // (i+1)
        const auto p = P.row(i).head(i + 1);  // (i+1)
        const T rowdot = ds.dot(p);           // Σ_j P_ij dP_ij
        // dS = P ⊙ (dP − rowdot), with the 1/√Dh of S = scale·QKᵀ folded in once here
        ds = (scale * p.array() * (ds.array() - rowdot)).matrix();
      }
      dQ.noalias() = dS.template triangularView<Eigen::Lower>() * K;
      dK.noalias() = dS.transpose().template triangularView<Eigen::Upper>() * Q;
      dV.noalias() = P.transpose().template triangularView<Eigen::Upper>() * dO;
    }
  });
}

}  // namespace attnres::ops
