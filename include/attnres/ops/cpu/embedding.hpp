#pragma once
// Embedding, cpu path. Forward: rows copied in parallel. Backward: the columns are split into
// blocks, one per thread, and each thread adds every token's gradient into its own columns in
// token order — race-free without atomics and deterministic (the reference's order).
// Tested equal to the reference in tests/ops/test_dense_ops.cpp.

#include <attnres/core/backend.hpp>
#include <attnres/core/parallel.hpp>
#include <attnres/core/simd.hpp>
#include <attnres/ops/depth_attention_types.hpp>  // no_deduce
#include <attnres/ops/reference/embedding.hpp>    // token and shape checks

#include <algorithm>
#include <cstdint>

namespace attnres::ops {

namespace embedding_detail {
// About 16k element copies or adds per chunk; fewer are not worth a thread.
inline index_t grain(index_t per_item) { return std::max<index_t>(1, 16384 / std::max<index_t>(1, per_item)); }
}  // namespace embedding_detail

template <class T>
void embedding_forward(backend::cpu, const std::int32_t* tokens /*(M)*/, index_t M,
                       no_deduce<const_matrix_view<T>> table /*(V,D)*/, matrix_view<T> out /*(M,D)*/) {
  embedding_detail::check_shapes("embedding_forward", M, table.cols, out.rows, out.cols, "out", "table");
  embedding_detail::check_tokens(tokens, M, table.rows);
  const index_t D = table.cols;
  parallel_chunks(M, embedding_detail::grain(D), [&](index_t, index_t begin, index_t end) {
    for (index_t i = begin; i < end; ++i) std::copy(table.row(tokens[i]), table.row(tokens[i]) + D, out.row(i));
  });
}

template <class T>
void embedding_backward(backend::cpu, const std::int32_t* tokens /*(M)*/, index_t M,
                        no_deduce<const_matrix_view<T>> dout /*(M,D)*/, matrix_view<T> dtable /*(V,D)*/) {
  embedding_detail::check_shapes("embedding_backward", M, dtable.cols, dout.rows, dout.cols, "dout", "dtable");
  embedding_detail::check_tokens(tokens, M, dtable.rows);
  const index_t D = dtable.cols;
  // Blocks of whole SIMD batches, so only the last block has a scalar tail.
  constexpr index_t W = simd::width<T>;
  const index_t batches = (D + W - 1) / W;
  parallel_chunks(batches, embedding_detail::grain(M * W), [&](index_t, index_t b0, index_t b1) {
    const index_t d0 = b0 * W, d1 = std::min(D, b1 * W);
    for (index_t i = 0; i < M; ++i) simd::add(dout.row(i) + d0, dtable.row(tokens[i]) + d0, d1 - d0);
  });
}

}  // namespace attnres::ops
