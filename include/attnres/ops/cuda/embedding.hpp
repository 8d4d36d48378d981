#pragma once
// Embedding, CUDA path: one thread per token (forward) or per channel (backward, every token in
// order: deterministic, no atomics). Contract: ops/embedding.hpp, with tokens a device array;
// the tokens are checked before anything is written.

#include <attnres/ops/cuda/cross_entropy.hpp>  // cuda_detail::check_ids
#include <attnres/ops/cuda/launch.hpp>
#include <attnres/ops/cuda/row/embedding.hpp>
#include <attnres/ops/depth_attention_types.hpp>  // no_deduce

#include <cstdint>

namespace attnres::ops {

namespace cuda_kernels {
template <class T>
__global__ void embedding_forward(const std::int32_t* tokens, index_t M, const T* table, index_t st, index_t D, T* out,
                                  index_t so) {
  const index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (i < M) row::embedding_forward_row(table, st, tokens[i], D, out + i * so);
}
template <class T>
__global__ void embedding_backward(const std::int32_t* tokens, index_t M, const T* dout, index_t so, index_t D, T* dtable,
                                   index_t st) {
  const index_t d = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (d < D) row::embedding_backward_channel(tokens, M, dout, so, d, dtable, st);
}
}  // namespace cuda_kernels

template <class T>
void embedding_forward(backend::cuda, const std::int32_t* tokens /*(M), device*/, index_t M,
                       no_deduce<const_matrix_view<T, device_space>> table /*(V,D)*/, matrix_view<T, device_space> out /*(M,D)*/) {
  expects<shape_error>(M >= 0 && out.rows == M && out.cols == table.cols, "embedding_forward: out is (", out.rows, ",",
                       out.cols, ") but ", M, " tokens of a table of width ", table.cols, " need (", M, ",", table.cols, ")");
  if (M == 0) return;
  cuda_detail::check_ids(tokens, M, table.rows, "embedding", "token", "position");
  cuda_kernels::embedding_forward<T><<<cuda_detail::grid_for(M, "embedding_forward"), cuda_detail::block_threads>>>(
      tokens, M, table.data, table.stride, table.cols, out.data, out.stride);
  cuda::check_launch("embedding_forward kernel");
}

template <class T>
void embedding_backward(backend::cuda, const std::int32_t* tokens /*(M), device*/, index_t M,
                        no_deduce<const_matrix_view<T, device_space>> dout /*(M,D)*/, matrix_view<T, device_space> dtable /*(V,D)*/) {
  expects<shape_error>(M >= 0 && dout.rows == M && dout.cols == dtable.cols, "embedding_backward: dout is (", dout.rows,
                       ",", dout.cols, ") but ", M, " tokens of a dtable of width ", dtable.cols, " need (", M, ",",
                       dtable.cols, ")");
  if (M == 0) return;
  cuda_detail::check_ids(tokens, M, dtable.rows, "embedding", "token", "position");
  cuda_kernels::embedding_backward<T><<<cuda_detail::grid_for(dtable.cols, "embedding_backward"), cuda_detail::block_threads>>>(
      tokens, M, dout.data, dout.stride, dtable.cols, dtable.data, dtable.stride);
  cuda::check_launch("embedding_backward kernel");
}

ATTNRES_CUDA_REJECT_HOST_VIEWS(embedding_forward)
ATTNRES_CUDA_REJECT_HOST_VIEWS(embedding_backward)

}  // namespace attnres::ops
