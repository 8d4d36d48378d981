#pragma once
// Embedding, one token (forward) or one channel (backward) at a time: the arithmetic of the CUDA
// kernels, for host and device. Contract: ops/embedding.hpp. Tokens are checked on the host
// before launch, so these functions trust them.

#include <attnres/ops/cuda/row/hd.hpp>

#include <cstdint>

namespace attnres::ops::row {

// out[i,:] = table[token, :]
template <class T>
ATTNRES_HD void embedding_forward_row(const T* table, index_t table_stride, std::int32_t token, index_t D, T* out) {
  const T* src = table + token * table_stride;
  for (index_t d = 0; d < D; ++d) out[d] = src[d];
}

// dtable[tokens[i], d] += dout[i, d] for every i in order: one channel walks every token, so a
// repeated token collects its gradients in the reference's order without atomics.
template <class T>
ATTNRES_HD void embedding_backward_channel(const std::int32_t* tokens, index_t M, const T* dout, index_t dout_stride,
                                           index_t d, T* dtable, index_t dtable_stride) {
  for (index_t i = 0; i < M; ++i) dtable[tokens[i] * dtable_stride + d] += dout[i * dout_stride + d];
}

}  // namespace attnres::ops::row
