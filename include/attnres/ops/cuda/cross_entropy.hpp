#pragma once
// Cross-entropy and softmax, CUDA path: one thread per row around ops/cuda/row/cross_entropy.hpp.
// Contract: ops/cross_entropy.hpp, with logits/dlogits device views and targets a device array.
// As in the reference, every target is checked before anything is written (a check kernel
// reports the first bad row); the per-row losses come back to the host and are summed in order.

#include <attnres/ops/cuda/launch.hpp>
#include <attnres/ops/cuda/row/cross_entropy.hpp>
#include <attnres/ops/depth_attention_types.hpp>  // no_deduce

#include <cstdint>
#include <type_traits>
#include <vector>

namespace attnres::ops {

namespace cuda_kernels {
// The first i with ids[i] outside [0, V), via atomicMin (INT_MAX when all are in range).
// (A template so that the header defines it in every translation unit without ODR trouble.)
template <class Id>
__global__ void first_out_of_range(const Id* ids, index_t M, index_t V, int* first) {
  const index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (i < M && (ids[i] < 0 || ids[i] >= V)) atomicMin(first, static_cast<int>(i));
}

template <class T>
__global__ void cross_entropy_rows(const T* z, index_t sz, const std::int32_t* targets, index_t M, index_t V, T* dz,
                                   index_t sdz, double k, double* loss) {
  const index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (i < M) loss[i] = row::cross_entropy_row(z + i * sz, V, targets[i], dz ? dz + i * sdz : nullptr, k);
}

template <class T>
__global__ void softmax_rows(const T* x, index_t sx, index_t M, index_t V, T* y, index_t sy) {
  const index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (i < M) row::softmax_row(x + i * sx, V, y + i * sy);
}
}  // namespace cuda_kernels

namespace cuda_detail {
// Throws shape_error naming the first id outside [0, V) (ids is a device array of M values).
inline void check_ids(const std::int32_t* ids, index_t M, index_t V, const char* op, const char* what,
                      const char* where) {
  if (M == 0) return;
  to_int(M, op, "the number of rows");
  int* first = static_cast<int*>(scratch_buffer().get(sizeof(int)));
  const int none = INT_MAX;
  cuda::copy_to_device(&none, first, 1);
  cuda_kernels::first_out_of_range<std::int32_t><<<grid_for(M, op), block_threads>>>(ids, M, V, first);
  cuda::check_launch("id range check kernel");
  int bad = none;
  cuda::copy_to_host(first, &bad, 1);
  if (bad == none) return;
  std::int32_t value = 0;
  cuda::copy_to_host(ids + bad, &value, 1);
  throw shape_error(attnres::detail::concat(op, ": ", what, " ", value, " at ", where, " ", bad, " is outside the vocabulary [0, ",
                                   V, ")"));
}
}  // namespace cuda_detail

template <class T>
double cross_entropy(backend::cuda, const_matrix_view<T, device_space> logits /*(M,V)*/,
                     const std::int32_t* targets /*(M), device*/, no_deduce<matrix_view<T, device_space>> dlogits /*(M,V) or null*/,
                     no_deduce<T> grad_scale = T(1)) {
  expects<shape_error>(dlogits.data == nullptr || (dlogits.rows == logits.rows && dlogits.cols == logits.cols),
                       "cross_entropy: dlogits is (", dlogits.rows, ",", dlogits.cols, ") but logits are (",
                       logits.rows, ",", logits.cols, ")");
  const index_t M = logits.rows, V = logits.cols;
  if (M == 0) return 0.0;
  cuda_detail::check_ids(targets, M, V, "cross_entropy", "target", "row");
  double* loss = static_cast<double*>(cuda_detail::scratch_buffer().get(static_cast<std::size_t>(M) * sizeof(double)));
  const double k = static_cast<double>(grad_scale) / static_cast<double>(M);
  cuda_kernels::cross_entropy_rows<T><<<cuda_detail::grid_for(M, "cross_entropy"), cuda_detail::block_threads>>>(
      logits.data, logits.stride, targets, M, V, dlogits.data, dlogits.stride, k, loss);
  cuda::check_launch("cross_entropy kernel");
  std::vector<double> rows(static_cast<std::size_t>(M));
  cuda::copy_to_host(loss, rows.data(), M);
  double total = 0;
  for (double l : rows) total += l;
  return total / static_cast<double>(M);
}

template <class T>
  requires(!std::is_const_v<T>)
double cross_entropy(backend::cuda be, matrix_view<T, device_space> logits, const std::int32_t* targets,
                     no_deduce<matrix_view<T, device_space>> dlogits, no_deduce<T> grad_scale = T(1)) {
  return cross_entropy<T>(be, const_matrix_view<T, device_space>(logits), targets, dlogits, grad_scale);
}

template <class T>
void softmax_rows(backend::cuda, no_deduce<const_matrix_view<T, device_space>> x /*(M,V)*/,
                  matrix_view<T, device_space> y /*(M,V)*/) {
  expects<shape_error>(y.rows == x.rows && y.cols == x.cols, "softmax_rows: y is (", y.rows, ",", y.cols,
                       ") but x is (", x.rows, ",", x.cols, ")");
  if (x.rows == 0) return;
  cuda_kernels::softmax_rows<T><<<cuda_detail::grid_for(x.rows, "softmax_rows"), cuda_detail::block_threads>>>(
      x.data, x.stride, x.rows, x.cols, y.data, y.stride);
  cuda::check_launch("softmax_rows kernel");
}

ATTNRES_CUDA_REJECT_HOST_VIEWS(cross_entropy)
ATTNRES_CUDA_REJECT_HOST_VIEWS(softmax_rows)

}  // namespace attnres::ops
