#pragma once
// add_to(src, dst) for device views: dst (M,D) += src (M,D), one thread per element around
// ops/cuda/row/add_to.hpp. The device overload of core/storage.hpp's add_to, which the residual
// policies call for their running sums (b += v) and summed gradients.

#include <attnres/ops/cuda/launch.hpp>
#include <attnres/ops/cuda/row/add_to.hpp>

#include <type_traits>

namespace attnres {

namespace ops::cuda_kernels {
template <class T>
__global__ void add_to(const T* src, index_t src_stride, T* dst, index_t dst_stride, index_t n, index_t cols) {
  const index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (i < n) row::add_to_thread(i, src, src_stride, dst, dst_stride, cols);
}
}  // namespace ops::cuda_kernels

template <class T, class U>
void add_to(matrix_view<U, device_space> src, matrix_view<T, device_space> dst) {
  static_assert(std::is_same_v<std::remove_const_t<U>, T>, "add_to: the scalar types must agree");
  expects<shape_error>(src.rows == dst.rows && src.cols == dst.cols, "add_to: source is (", src.rows, ",", src.cols,
                       ") but destination is (", dst.rows, ",", dst.cols, ")");
  const index_t n = dst.rows * dst.cols;
  if (n == 0) return;
  ops::cuda_kernels::add_to<T><<<ops::cuda_detail::grid_for(n, "add_to"), ops::cuda_detail::block_threads>>>(
      src.data, src.stride, dst.data, dst.stride, n, dst.cols);
  cuda::check_launch("add_to kernel");
}

// out = a + b for device views: a copy (when out is not a) and the add_to kernel.
template <class T>
void sum_to(const_matrix_view<T, device_space> a, const_matrix_view<T, device_space> b,
            matrix_view<T, device_space> out) {
  if (a.data != out.data) copy(a, out);
  add_to(b, out);
}

}  // namespace attnres
