#pragma once
// dst += src one element at a time (the residual stream's b += v, the summed gather gradients):
// the arithmetic and the index map of the CUDA add_to kernel, for host and device.

#include <attnres/ops/cuda/row/activation.hpp>  // element_offset
#include <attnres/ops/cuda/row/hd.hpp>

namespace attnres::ops::row {

// Thread i of n = rows·cols: element (i / cols, i % cols) of two views with their own strides.
template <class T>
ATTNRES_HD void add_to_thread(index_t i, const T* src, index_t src_stride, T* dst, index_t dst_stride, index_t cols) {
  dst[element_offset(i, cols, dst_stride)] += src[element_offset(i, cols, src_stride)];
}

}  // namespace attnres::ops::row
