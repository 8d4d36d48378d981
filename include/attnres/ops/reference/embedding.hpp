#pragma once
// Embedding, reference path: plain loops templated on the scalar (the oracle). Contract:
// ops/embedding.hpp.

#include <attnres/core/backend.hpp>
#include <attnres/core/error.hpp>
#include <attnres/core/tensor.hpp>
#include <attnres/ops/depth_attention_types.hpp>  // no_deduce

#include <algorithm>
#include <cstdint>

namespace attnres::ops {

namespace embedding_detail {
// Every token in [0, V), checked before any output is touched.
inline void check_tokens(const std::int32_t* tokens, index_t M, index_t V) {
  for (index_t i = 0; i < M; ++i)
    expects<shape_error>(tokens[i] >= 0 && tokens[i] < V, "embedding: token ", tokens[i], " at position ", i,
                         " is outside the vocabulary [0, ", V, ")");
}

// rows (M, D) for M tokens of a table of width D.
inline void check_shapes(const char* op, index_t M, index_t D, index_t rows, index_t cols, const char* rows_name,
                         const char* table_name) {
  expects<shape_error>(M >= 0, op, ": negative token count ", M);
  expects<shape_error>(rows == M && cols == D, op, ": ", rows_name, " is (", rows, ",", cols, ") but ", M,
                       " tokens of a ", table_name, " of width ", D, " need (", M, ",", D, ")");
}
}  // namespace embedding_detail

template <class T>
void embedding_forward(backend::reference, const std::int32_t* tokens /*(M)*/, index_t M,
                       no_deduce<const_matrix_view<T>> table /*(V,D)*/, matrix_view<T> out /*(M,D)*/) {
  embedding_detail::check_shapes("embedding_forward", M, table.cols, out.rows, out.cols, "out", "table");
  embedding_detail::check_tokens(tokens, M, table.rows);
  for (index_t i = 0; i < M; ++i)
    for (index_t d = 0; d < table.cols; ++d) out(i, d) = table(tokens[i], d);
}

template <class T>
void embedding_backward(backend::reference, const std::int32_t* tokens /*(M)*/, index_t M,
                        no_deduce<const_matrix_view<T>> dout /*(M,D)*/, matrix_view<T> dtable /*(V,D)*/) {
  embedding_detail::check_shapes("embedding_backward", M, dtable.cols, dout.rows, dout.cols, "dout", "dtable");
  embedding_detail::check_tokens(tokens, M, dtable.rows);
  for (index_t i = 0; i < M; ++i)
    for (index_t d = 0; d < dtable.cols; ++d) dtable(tokens[i], d) += dout(i, d);
}

}  // namespace attnres::ops
