#pragma once
// KV-cache decoding, cpu path: one task per (sequence, head), in parallel over batch·H; each
// task is n dot products (4 keys per read of the query), a vectorised softmax and one weighted
// sum of the n value rows (8 rows per pass over the output), xsimd throughout. One query row is
// too thin for a GEMM to pay off. attention_decode_step runs a whole head of the layer's step
// (projections, RoPE, cache write, attention) on one thread. Tested equal to the reference and
// to the last row of the full causal forward (tests/ops/test_attention_ops.cpp).

#include <attnres/core/backend.hpp>
#include <attnres/core/parallel.hpp>
#include <attnres/core/simd.hpp>
#include <attnres/ops/cpu/linear.hpp>
#include <attnres/ops/cpu/rope.hpp>
#include <attnres/ops/reference/attention_decode.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

namespace attnres::ops {

namespace cpu_detail {
// Head h of sequence b: qh (Dh), kh and vh the head's first cached key and value, the next one
// `stride` further. s_j = scale·(q·k_j) with the query read once per 4 keys, a vectorised
// softmax, then out = Σ_j p_j v_j with the output read and written once per 8 values. p and rows
// are the caller's scratch of at least padded(n) and n.
template <class T>
void attend_head(const T* qh, const T* kh, const T* vh, index_t stride, index_t n, index_t Dh, T scale, T* out, T* p,
                 const T** rows) {
  for (index_t j = 0; j < n; ++j) rows[j] = kh + j * stride;
  simd::dots_with(qh, rows, n, Dh, p);
  for (index_t j = 0; j < n; ++j) p[j] *= scale;
  simd::softmax_padded(p, n);  // shifted by the max inside: e^x cannot overflow
  for (index_t j = 0; j < n; ++j) rows[j] = vh + j * stride;
  simd::weighted_sum(rows, p, n, Dh, out);
}

// This worker's scratch for attend_head, grown only: a step allocates nothing once warm.
template <class T>
struct decode_scratch {
  std::vector<T> p;            // (n) scores, then weights; room for the softmax's padding
  std::vector<const T*> rows;  // (n) the head's key rows, then its value rows
  void reserve(index_t n) {
    p.resize(static_cast<std::size_t>(simd::padded<T>(n)));
    rows.resize(static_cast<std::size_t>(n));
  }
};
template <class T>
decode_scratch<T>& this_thread_decode_scratch(index_t n) {
  static thread_local decode_scratch<T> scratch;
  scratch.reserve(n);
  return scratch;
}
}  // namespace cpu_detail

template <class T>
void attention_decode(backend::cpu, no_deduce<const_matrix_view<T>> q /*(B, H·Dh)*/,
                      const T* k_cache /*(B, T_max, H·Dh)*/, const T* v_cache /*(B, T_max, H·Dh)*/, index_t n,
                      index_t T_max, index_t H, matrix_view<T> out /*(B, H·Dh)*/) {
  const index_t Dh = detail::decode_check(q.rows, q.cols, out.rows, out.cols, k_cache && v_cache, n, T_max, H);
  const index_t HD = q.cols;
  const T scale = T(1) / std::sqrt(T(Dh));
  parallel_chunks(q.rows * H, 1, [&](index_t, index_t begin, index_t end) {
    auto& scratch = cpu_detail::this_thread_decode_scratch<T>(n);
    for (index_t task = begin; task < end; ++task) {
      const index_t b = task / H, c0 = (task % H) * Dh;
      cpu_detail::attend_head(q.row(b) + c0, k_cache + b * T_max * HD + c0, v_cache + b * T_max * HD + c0, HD, n, Dh, scale,
                              out.row(b) + c0, scratch.p.data(), scratch.rows.data());
    }
  });
}

// A decode step of the attention layer up to its output projection (contract in
// ops/attention_decode.hpp). A head needs nothing of the other heads from its q, k and v rows to
// its attention, so at most 4 sequences (the matrix-vector path of the projections) run each
// head start to end on one thread: one parallel loop where the ops in turn take two (the
// projections, then the attention), each a hand-off between the threads that costs ≈ 1–2 µs of
// a 0.4–0.6 ms step (docs/performance.md, round 21). Heads that do not divide evenly over the
// threads would leave one thread a whole head's projections behind: those run the ops in turn.
// Weight: T, or bf16 for decoding with bf16 weights (attention_decode_step<float, bf16>).
template <class T, class Weight = T>
void attention_decode_step(backend::cpu, no_deduce<const_matrix_view<T>> x /*(B,D)*/,
                           no_deduce<const_matrix_view<Weight>> wq, no_deduce<const_matrix_view<Weight>> wk,
                           no_deduce<const_matrix_view<Weight>> wv /*(D,D)*/, matrix_view<T> q, matrix_view<T> k,
                           matrix_view<T> v /*(B,D)*/, T* k_cache, T* v_cache /*(B, T_max, D)*/, index_t pos, index_t T_max,
                           index_t H, double theta, matrix_view<T> out /*(B,D)*/) {
  const index_t Dh = detail::decode_step_check<T, host_space, Weight>(x, wq, wk, wv, q, k, v, k_cache && v_cache, pos,
                                                                      T_max, H, out, theta);
  const index_t B = q.rows, D = q.cols;
  using target = linear_target<T, host_space, Weight>;
  if (B > linear_detail::gemv_max_rows || H % max_threads() != 0) {
    linear_forward_shared_input(backend::cpu{}, x, std::array{target{wq, q}, target{wk, k}, target{wv, v}});
    rope_forward(backend::cpu{}, q, 1, H, pos, theta);
    rope_forward(backend::cpu{}, k, 1, H, pos, theta);
    copy(const_matrix_view<T>(k), matrix_view<T>(k_cache + pos * D, B, D, T_max * D));
    copy(const_matrix_view<T>(v), matrix_view<T>(v_cache + pos * D, B, D, T_max * D));
    attention_decode(backend::cpu{}, q, k_cache, v_cache, pos + 1, T_max, H, out);
    return;
  }
  const T scale = T(1) / std::sqrt(T(Dh));
  parallel_for(0, H, [&](index_t h) {
    // head h's columns of a (B,D) view, and its rows of a weight matrix; the ops below see one
    // head (H = 1) and run serially inside this loop
    const index_t c0 = h * Dh;
    auto cols = [&](matrix_view<T> m) { return matrix_view<T>(m.data + c0, m.rows, Dh, m.stride); };
    auto rows = [&](const_matrix_view<Weight> W) { return W.middle_rows(c0, Dh); };
    linear_forward_shared_input(backend::cpu{}, x,
                                std::array{target{rows(wq), cols(q)}, target{rows(wk), cols(k)}, target{rows(wv), cols(v)}});
    rope_forward(backend::cpu{}, cols(q), 1, 1, pos, theta);
    rope_forward(backend::cpu{}, cols(k), 1, 1, pos, theta);
    auto& scratch = cpu_detail::this_thread_decode_scratch<T>(pos + 1);
    for (index_t b = 0; b < B; ++b) {
      T* const kb = k_cache + b * T_max * D + c0;  // (b, position 0, head h)
      T* const vb = v_cache + b * T_max * D + c0;
      std::copy(k.row(b) + c0, k.row(b) + c0 + Dh, kb + pos * D);
      std::copy(v.row(b) + c0, v.row(b) + c0 + Dh, vb + pos * D);
      cpu_detail::attend_head<T>(q.row(b) + c0, kb, vb, D, pos + 1, Dh, scale, out.row(b) + c0, scratch.p.data(),
                                 scratch.rows.data());
    }
  });
}

}  // namespace attnres::ops
