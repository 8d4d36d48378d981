#pragma once
// tensor<T>: an owning, 64-byte aligned, row-major array with a runtime shape.
// matrix_view<T>: a non-owning 2-D window (rows × cols, with a row stride) into one.
//
// Every op in attnres works on matrix views whose rows are tokens and whose columns are the
// model width: a (B,T,D) activation is seen as (B·T, D). Sizes are runtime values; only the
// scalar type and the memory space are template parameters.

#include <attnres/core/error.hpp>
#include <attnres/core/index.hpp>
#include <attnres/core/memory_space.hpp>
#include <attnres/core/parallel.hpp>

#include <algorithm>
#include <cstddef>
#include <initializer_list>
#include <new>
#include <type_traits>
#include <vector>

namespace attnres {

// Allocator with 64-byte alignment (a cache line; enough for any SIMD width we use).
template <class T>
struct aligned_allocator {
  using value_type = T;
  static constexpr std::align_val_t alignment{64};
  aligned_allocator() noexcept = default;
  template <class U>
  aligned_allocator(const aligned_allocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), alignment)); }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, alignment); }
  template <class U>
  bool operator==(const aligned_allocator<U>&) const noexcept {
    return true;
  }
};

template <class T, class Space = host_space>
struct matrix_view {
  using value_type = std::remove_const_t<T>;
  using memory_space = Space;

  T* data = nullptr;
  index_t rows = 0;
  index_t cols = 0;
  index_t stride = 0;  // elements between the starts of consecutive rows (>= cols)

  constexpr matrix_view() = default;
  constexpr matrix_view(T* d, index_t r, index_t c) : data(d), rows(r), cols(c), stride(c) {}
  constexpr matrix_view(T* d, index_t r, index_t c, index_t s) : data(d), rows(r), cols(c), stride(s) {}

  // A view of mutable data converts to a view of const data, never the other way.
  template <class U>
    requires(std::is_same_v<const U, T> && !std::is_same_v<U, T>)
  constexpr matrix_view(const matrix_view<U, Space>& o)
      : data(o.data), rows(o.rows), cols(o.cols), stride(o.stride) {}

  constexpr T* row(index_t i) const { return data + i * stride; }
  constexpr T& operator()(index_t i, index_t j) const { return data[i * stride + j]; }
  constexpr bool empty() const { return rows == 0 || cols == 0; }
  constexpr bool contiguous() const { return stride == cols; }
  // Rows [first, first + count).
  constexpr matrix_view middle_rows(index_t first, index_t count) const {
    return {data + first * stride, count, cols, stride};
  }
};

template <class T, class Space = host_space>
using const_matrix_view = matrix_view<const T, Space>;

template <class T, class Space = host_space>
class tensor {
  static_assert(std::is_same_v<Space, host_space>,
                "attnres::tensor owns host memory; device tensors live in <attnres/cuda.hpp>");

 public:
  using value_type = T;
  using memory_space = Space;

  tensor() = default;
  explicit tensor(std::vector<index_t> shape) : shape_(std::move(shape)) {
    index_t n = 1;
    for (index_t d : shape_) {
      expects<shape_error>(d >= 0, "tensor: negative dimension ", d);
      n *= d;
    }
    data_.assign(static_cast<std::size_t>(n), T(0));
  }
  tensor(std::initializer_list<index_t> shape) : tensor(std::vector<index_t>(shape)) {}

  const std::vector<index_t>& shape() const { return shape_; }
  index_t dim(std::size_t i) const { return shape_.at(i); }
  index_t rank() const { return static_cast<index_t>(shape_.size()); }
  index_t size() const { return static_cast<index_t>(data_.size()); }
  bool empty() const { return data_.empty(); }

  T* data() { return data_.data(); }
  const T* data() const { return data_.data(); }
  T* begin() { return data_.data(); }
  T* end() { return data_.data() + data_.size(); }
  const T* begin() const { return data_.data(); }
  const T* end() const { return data_.data() + data_.size(); }
  T& operator[](index_t i) { return data_[static_cast<std::size_t>(i)]; }
  const T& operator[](index_t i) const { return data_[static_cast<std::size_t>(i)]; }

  // Leading dimensions flattened into rows, the last one as columns: (B,T,D) -> (B·T, D).
  index_t cols() const { return shape_.empty() ? 1 : shape_.back(); }
  index_t rows() const { return cols() == 0 ? 0 : size() / cols(); }
  matrix_view<T, Space> mat() { return {data(), rows(), cols()}; }
  const_matrix_view<T, Space> mat() const { return {data(), rows(), cols()}; }

  // In parallel when large: a serial 2 MiB fill would keep the other threads waiting.
  void fill(T v) {
    const index_t n = size();
    parallel_chunks(n, parallel_copy_grain, [&](index_t, index_t b, index_t e) { std::fill(data() + b, data() + e, v); });
  }
  void set_zero() { fill(T(0)); }

 private:
  std::vector<index_t> shape_;
  std::vector<T, aligned_allocator<T>> data_;
};

// A fresh tensor of the same shape holding a copy of a view's elements.
template <class T, class Space>
tensor<std::remove_const_t<T>, Space> to_tensor(matrix_view<T, Space> v) {
  tensor<std::remove_const_t<T>, Space> out({v.rows, v.cols});
  for (index_t i = 0; i < v.rows; ++i) std::copy(v.row(i), v.row(i) + v.cols, out.data() + i * v.cols);
  return out;
}

// Copies src into dst (same shape, checked). Host memory only: the device overload lives in
// <attnres/cuda/device_tensor.hpp>, so a device view never reaches std::copy.
template <class T, class U>
void copy(matrix_view<U, host_space> src, matrix_view<T, host_space> dst) {
  expects<shape_error>(src.rows == dst.rows && src.cols == dst.cols, "copy: source is (", src.rows,
                       ",", src.cols, ") but destination is (", dst.rows, ",", dst.cols, ")");
  parallel_chunks(src.rows, copy_grain_rows(src.cols), [&](index_t, index_t b, index_t e) {
    for (index_t i = b; i < e; ++i) std::copy(src.row(i), src.row(i) + src.cols, dst.row(i));
  });
}

}  // namespace attnres
