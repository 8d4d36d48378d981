#pragma once
// device_tensor<T>: an owning, row-major array in device memory with a runtime shape — the
// device twin of tensor<T>. Its views are matrix_view<T, device_space>, so they can only be
// handed to CUDA ops; moving data between the spaces is explicit (upload / download).
// Move-only: a copy would be a hidden device allocation plus a device-to-device transfer.
//
// Also here, for generic code (core/storage.hpp): storage_t<T, device_space> = device_tensor<T>,
// and the device_space overloads of fill_n, copy_from_host, copy_to_host, copy and
// require_available. None of them launches a kernel (add_to, which does, is ops/cuda/add_to.hpp).

#include <attnres/core/storage.hpp>
#include <attnres/core/tensor.hpp>
#include <attnres/cuda/runtime.hpp>

#include <cuda_runtime.h>

#include <cstddef>
#include <initializer_list>
#include <utility>
#include <vector>

namespace attnres::cuda {

// Allocates bytes of device memory; out of memory throws device_memory_error naming the size and
// what the device has free.
inline void* device_allocate(std::size_t bytes) {
  if (bytes == 0) return nullptr;
  void* p = nullptr;
  const cudaError_t status = cudaMalloc(&p, bytes);
  if (status == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    std::size_t free_b = 0, total_b = 0;
    const bool known = cudaMemGetInfo(&free_b, &total_b) == cudaSuccess;
    cudaGetLastError();
    throw device_memory_error(detail::concat("attnres cuda: out of device memory allocating ", bytes, " bytes (",
                                             static_cast<double>(bytes) / (1 << 20), " MiB)",
                                             known ? detail::concat("; the device has ", free_b >> 20, " MiB free of ",
                                                                    total_b >> 20, " MiB")
                                                   : std::string()),
                              bytes);
  }
  if (status != cudaSuccess) require_device("allocating device memory");  // the clearer message when there is none
  check(status, "cudaMalloc");
  return p;
}

template <class T>
class device_tensor {
 public:
  using value_type = T;
  using memory_space = device_space;

  device_tensor() = default;
  explicit device_tensor(std::vector<index_t> shape) : shape_(std::move(shape)) {
    index_t n = 1;
    for (index_t d : shape_) {
      expects<shape_error>(d >= 0, "device_tensor: negative dimension ", d);
      n *= d;
    }
    size_ = n;
    data_ = static_cast<T*>(device_allocate(static_cast<std::size_t>(n) * sizeof(T)));
    set_zero();  // like tensor<T>: a fresh tensor holds zeros
  }
  device_tensor(std::initializer_list<index_t> shape) : device_tensor(std::vector<index_t>(shape)) {}

  device_tensor(device_tensor&& o) noexcept
      : shape_(std::move(o.shape_)), size_(std::exchange(o.size_, 0)), data_(std::exchange(o.data_, nullptr)) {}
  device_tensor& operator=(device_tensor&& o) noexcept {
    if (this != &o) {
      release();
      shape_ = std::move(o.shape_);
      size_ = std::exchange(o.size_, 0);
      data_ = std::exchange(o.data_, nullptr);
    }
    return *this;
  }
  device_tensor(const device_tensor&) = delete;
  device_tensor& operator=(const device_tensor&) = delete;
  ~device_tensor() { release(); }

  const std::vector<index_t>& shape() const { return shape_; }
  index_t dim(std::size_t i) const { return shape_.at(i); }
  index_t rank() const { return static_cast<index_t>(shape_.size()); }
  index_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::size_t bytes() const { return static_cast<std::size_t>(size_) * sizeof(T); }

  // Device pointers: dereferencing them on the host is an error.
  T* data() { return data_; }
  const T* data() const { return data_; }

  index_t cols() const { return shape_.empty() ? 1 : shape_.back(); }
  index_t rows() const { return cols() == 0 ? 0 : size() / cols(); }
  matrix_view<T, device_space> mat() { return {data(), rows(), cols()}; }
  const_matrix_view<T, device_space> mat() const { return {data(), rows(), cols()}; }

  void set_zero() {
    if (size_ > 0) check(cudaMemset(data_, 0, bytes()), "cudaMemset");
  }
  // Every element = v (through a host buffer: used for initialisation, not in a training step).
  void fill(T v) {
    if (v == T(0)) return set_zero();
    const std::vector<T> host(static_cast<std::size_t>(size_), v);
    if (size_ > 0) check(cudaMemcpy(data_, host.data(), bytes(), cudaMemcpyHostToDevice), "cudaMemcpy (fill)");
  }

 private:
  void release() noexcept {
    if (data_) cudaFree(data_);  // never throws from a destructor; a failure here is not recoverable
    data_ = nullptr;
  }
  std::vector<index_t> shape_;
  index_t size_ = 0;
  T* data_ = nullptr;
};

// Host → device: a device tensor with the host tensor's shape and contents.
template <class T>
device_tensor<T> upload(const tensor<T>& host) {
  device_tensor<T> d(host.shape());
  if (!host.empty()) check(cudaMemcpy(d.data(), host.data(), d.bytes(), cudaMemcpyHostToDevice), "cudaMemcpy (upload)");
  return d;
}

// Device → host: a host tensor with the device tensor's shape and contents.
template <class T>
tensor<T> download(const device_tensor<T>& dev) {
  tensor<T> h(dev.shape());
  if (!dev.empty()) check(cudaMemcpy(h.data(), dev.data(), dev.bytes(), cudaMemcpyDeviceToHost), "cudaMemcpy (download)");
  return h;
}

// Copies between views of the two spaces (same shape, checked; strides respected).
template <class T, class U>
void copy(matrix_view<U, host_space> src, matrix_view<T, device_space> dst) {
  static_assert(std::is_same_v<std::remove_const_t<U>, T>, "cuda::copy: the scalar types must agree");
  expects<shape_error>(src.rows == dst.rows && src.cols == dst.cols, "cuda::copy: host source is (", src.rows, ",",
                       src.cols, ") but the device destination is (", dst.rows, ",", dst.cols, ")");
  if (src.empty()) return;
  check(cudaMemcpy2D(dst.data, dst.stride * sizeof(T), src.data, src.stride * sizeof(T), src.cols * sizeof(T), src.rows,
                     cudaMemcpyHostToDevice),
        "cudaMemcpy2D (host to device)");
}
template <class T, class U>
void copy(matrix_view<U, device_space> src, matrix_view<T, host_space> dst) {
  static_assert(std::is_same_v<std::remove_const_t<U>, T>, "cuda::copy: the scalar types must agree");
  expects<shape_error>(src.rows == dst.rows && src.cols == dst.cols, "cuda::copy: device source is (", src.rows, ",",
                       src.cols, ") but the host destination is (", dst.rows, ",", dst.cols, ")");
  if (src.empty()) return;
  check(cudaMemcpy2D(dst.data, dst.stride * sizeof(T), src.data, src.stride * sizeof(T), src.cols * sizeof(T), src.rows,
                     cudaMemcpyDeviceToHost),
        "cudaMemcpy2D (device to host)");
}

// Copies n elements between raw pointers of the named spaces.
template <class T>
void copy_to_device(const T* host, T* device, index_t n) {
  if (n > 0) check(cudaMemcpy(device, host, static_cast<std::size_t>(n) * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy (host to device)");
}
template <class T>
void copy_to_host(const T* device, T* host, index_t n) {
  if (n > 0) check(cudaMemcpy(host, device, static_cast<std::size_t>(n) * sizeof(T), cudaMemcpyDeviceToHost), "cudaMemcpy (device to host)");
}

}  // namespace attnres::cuda

// ---- device_space for generic code (core/storage.hpp) ------------------------------------------
namespace attnres {

template <class T>
struct storage_of<T, device_space> {
  using type = cuda::device_tensor<T>;
};

inline void require_available(device_space, const char* who) { cuda::require_device(who); }

template <class T>
void fill_n(device_space, T* p, index_t n, T value) {
  if (n <= 0) return;
  if (value == T(0)) {
    cuda::check(cudaMemset(p, 0, static_cast<std::size_t>(n) * sizeof(T)), "cudaMemset");
  } else {
    const std::vector<T> host(static_cast<std::size_t>(n), value);
    cuda::copy_to_device(host.data(), p, n);
  }
}

template <class T>
void copy_from_host(device_space, const T* host, T* dst, index_t n) {
  cuda::copy_to_device(host, dst, n);
}

template <class T>
void copy_to_host(device_space, const T* src, T* host, index_t n) {
  cuda::copy_to_host(src, host, n);
}

// Device to device (same shape, checked; strides respected).
template <class T, class U>
void copy(matrix_view<U, device_space> src, matrix_view<T, device_space> dst) {
  static_assert(std::is_same_v<std::remove_const_t<U>, T>, "copy: the scalar types must agree");
  expects<shape_error>(src.rows == dst.rows && src.cols == dst.cols, "copy: source is (", src.rows, ",", src.cols,
                       ") but destination is (", dst.rows, ",", dst.cols, ")");
  if (src.empty()) return;
  cuda::check(cudaMemcpy2D(dst.data, dst.stride * sizeof(T), src.data, src.stride * sizeof(T), src.cols * sizeof(T),
                           src.rows, cudaMemcpyDeviceToDevice),
              "cudaMemcpy2D (device to device)");
}

}  // namespace attnres
