#pragma once
// Where a backend keeps its tensors, and the few memory operations generic code needs.
//
//   storage_t<T, Space>        the owning tensor type of a memory space: tensor<T> for host_space;
//                              cuda::device_tensor<T> for device_space (specialised in
//                              <attnres/cuda/device_tensor.hpp>, so host code needs no CUDA header)
//   backend_tensor<T, Backend> storage_t<T, backend_traits<Backend>::memory_space>
//
// Layers, residual policies and the model hold backend_tensor<T, Backend>, so one forward and
// backward code path runs on every backend. Both tensor types share the interface that code uses:
// a shape constructor (zero-filled), shape(), dim(), rank(), size(), rows(), cols(), data(), mat(),
// set_zero() and fill().
//
// Raw memory of a named space (parameter lists, statistics vectors) moves through overloads on the
// space tag; the device_space ones live next to device_tensor:
//   fill_n(space, p, n, value)              p[0..n) = value
//   copy_from_host(space, host, dst, n)     dst[0..n) (in space) = host[0..n)
//   copy_to_host(space, src, host, n)       host[0..n) = src[0..n) (in space)
// Views: copy(src, dst) (core/tensor.hpp), add_to(src, dst) below, dst += src row by row, and
// sum_to(a, b, out), out = a + b (out may be a).
//   require_available(space, who)           throws when the space has no memory to allocate in
//                                           (no CUDA device); a no-op for the host

#include <attnres/core/backend.hpp>
#include <attnres/core/error.hpp>
#include <attnres/core/memory_space.hpp>
#include <attnres/core/parallel.hpp>
#include <attnres/core/simd.hpp>
#include <attnres/core/tensor.hpp>

#include <algorithm>

namespace attnres {

// The primary template is deliberately undefined: a space without storage fails to compile.
template <class T, class Space>
struct storage_of;

template <class T>
struct storage_of<T, host_space> {
  using type = tensor<T>;
};

template <class T, class Space>
using storage_t = typename storage_of<T, Space>::type;

template <class T, class Backend>
using backend_tensor = storage_t<T, typename backend_traits<Backend>::memory_space>;

inline void require_available(host_space, const char* /*who*/) {}

template <class T>
void fill_n(host_space, T* p, index_t n, T value) {
  std::fill(p, p + n, value);
}

template <class T>
void copy_from_host(host_space, const T* host, T* dst, index_t n) {
  std::copy(host, host + n, dst);
}

template <class T>
void copy_to_host(host_space, const T* src, T* host, index_t n) {
  std::copy(src, src + n, host);
}

// dst (M,D) += src (M,D), row by row (the residual stream's b += v).
template <class T, class U>
void add_to(matrix_view<U, host_space> src, matrix_view<T, host_space> dst) {
  expects<shape_error>(src.rows == dst.rows && src.cols == dst.cols, "add_to: source is (", src.rows, ",", src.cols,
                       ") but destination is (", dst.rows, ",", dst.cols, ")");
  parallel_chunks(dst.rows, copy_grain_rows(dst.cols),
                  [&](index_t, index_t b, index_t e) {
                    for (index_t t = b; t < e; ++t) simd::add(src.row(t), dst.row(t), dst.cols);
                  });
}

// out (M,D) = a + b, row by row; out may be a (Block's running sum, written into the slot of the
// gather point that reads it, so no copy is needed for the backward).
template <class T>
void sum_to(const_matrix_view<T, host_space> a, const_matrix_view<T, host_space> b, matrix_view<T, host_space> out) {
  expects<shape_error>(a.rows == out.rows && a.cols == out.cols && b.rows == out.rows && b.cols == out.cols,
                       "sum_to: the operands are (", a.rows, ",", a.cols, ") and (", b.rows, ",", b.cols,
                       ") but the output is (", out.rows, ",", out.cols, ")");
  parallel_chunks(out.rows, copy_grain_rows(out.cols),
                  [&](index_t, index_t b0, index_t e) {
                    for (index_t t = b0; t < e; ++t) simd::sum_to(a.row(t), b.row(t), out.row(t), out.cols);
                  });
}

}  // namespace attnres
