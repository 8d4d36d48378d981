#pragma once
// AdamW, CUDA path: one thread per element around ops/cuda/row/adamw.hpp; the coefficients are
// rounded to T on the host exactly as the reference rounds them. Contract: ops/adamw.hpp, with
// param, grad, m, v device pointers. sum_of_squares and scale for gradient clipping too.

#include <attnres/ops/adamw.hpp>
#include <attnres/ops/cuda/launch.hpp>
#include <attnres/ops/cuda/row/adamw.hpp>

#include <cmath>
#include <vector>

namespace attnres::ops {

namespace cuda_kernels {
template <class T>
__global__ void adamw_step(T* param, const T* grad, T* m, T* v, index_t n, row::adamw_coeffs<T> k) {
  const index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (i < n) row::adamw_elem(&param[i], grad[i], &m[i], &v[i], k);
}

// Partial Σ x² in double, one per block of `chunk` consecutive elements (summed on the host in
// order, so the result is deterministic).
template <class T>
__global__ void sum_of_squares_chunks(const T* x, index_t n, index_t chunk, double* partial, index_t parts) {
  const index_t c = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (c >= parts) return;
  double s = 0;
  const index_t end = (c + 1) * chunk < n ? (c + 1) * chunk : n;
  for (index_t i = c * chunk; i < end; ++i) s += static_cast<double>(x[i]) * static_cast<double>(x[i]);
  partial[c] = s;
}

template <class T>
__global__ void scale(T* x, index_t n, T s) {
  const index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (i < n) x[i] *= s;
}
}  // namespace cuda_kernels

template <class T>
void adamw_step(backend::cuda, T* param /*(n)*/, const T* grad /*(n)*/, T* m /*(n)*/, T* v /*(n)*/, index_t n,
                const adamw_step_args& a) {
  adamw_detail::check(a, n);
  if (n == 0) return;
  const row::adamw_coeffs<T> k{T(a.lr), T(a.beta1), T(a.beta2), T(a.eps), T(a.weight_decay), T(1 - a.beta1),
                               T(1 - a.beta2), T(1 - std::pow(a.beta1, static_cast<double>(a.step))),
                               T(1 - std::pow(a.beta2, static_cast<double>(a.step)))};
  cuda_kernels::adamw_step<T><<<cuda_detail::grid_for(n, "adamw_step"), cuda_detail::block_threads>>>(param, grad, m, v, n, k);
  cuda::check_launch("adamw_step kernel");
}

template <class T>
double sum_of_squares(backend::cuda, const T* x /*(n)*/, index_t n) {
  if (n <= 0) return 0.0;
  const index_t chunk = 4096, parts = (n + chunk - 1) / chunk;
  double* partial = static_cast<double*>(cuda_detail::scratch_buffer().get(static_cast<std::size_t>(parts) * sizeof(double)));
  cuda_kernels::sum_of_squares_chunks<T><<<cuda_detail::grid_for(parts, "sum_of_squares"), cuda_detail::block_threads>>>(
      x, n, chunk, partial, parts);
  cuda::check_launch("sum_of_squares kernel");
  std::vector<double> host(static_cast<std::size_t>(parts));
  cuda::copy_to_host(partial, host.data(), parts);
  double s = 0;
  for (double p : host) s += p;
  return s;
}

template <class T>
void scale(backend::cuda, T* x /*(n)*/, index_t n, no_deduce<T> s) {
  if (n <= 0) return;
  cuda_kernels::scale<T><<<cuda_detail::grid_for(n, "scale"), cuda_detail::block_threads>>>(x, n, s);
  cuda::check_launch("scale kernel");
}

}  // namespace attnres::ops
