#pragma once
// Depth attention, CUDA path: launch shells around ops/cuda/row/depth_attention.hpp, one thread
// per token (per channel for the parameter gradients). The contract is ops/depth_attention.hpp
// with every view in device memory; the arithmetic is the row math the CPU tests check.

#include <attnres/ops/cuda/add_to.hpp>
#include <attnres/ops/cuda/launch.hpp>
#include <attnres/ops/cuda/row/depth_attention.hpp>
#include <attnres/ops/depth_attention_types.hpp>

#include <span>
#include <vector>

namespace attnres::ops {

namespace cuda_kernels {

template <class T>
__global__ void key_norm_stats(const T* v, index_t stride, index_t M, index_t D, T eps, T* inv_rms, int* first_bad) {
  const index_t t = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (t >= M) return;
  const T r = row::key_norm_inv_rms(v + t * stride, D, eps);
  inv_rms[t] = r;
  if (!(r > T(0) && r < T(HUGE_VAL))) atomicMin(first_bad, static_cast<int>(t));  // NaN fails both tests
}

template <class T>
__global__ void row_dots(const T* a, index_t sa, const T* b, index_t sb, index_t M, index_t D, T* out) {
  const index_t t = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (t < M) out[t] = row::dot(a + t * sa, b + t * sb, D);
}

template <class T>
__global__ void depth_forward(const row::source_rows<T>* src, index_t n, const T* w, const T* g, index_t M, index_t D,
                              T* h, index_t sh, T* alpha, index_t sa) {
  const index_t t = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (t < M) row::depth_forward_token(src, n, t, w, g, D, h + t * sh, alpha, sa);
}

// One thread per (query p, token t): the S queries of a block share the sources.
template <class T>
struct stats_rows {
  const T* w;
  const T* g;
  T* o;
  index_t so;
  T* m;
  T* l;
  T* logits;
  index_t sl;
  bool normalized;
};

template <class T>
__global__ void depth_stats(const row::source_rows<T>* src, index_t n, const stats_rows<T>* st, index_t S, index_t M,
                            index_t D) {
  const index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (i >= S * M) return;
  const index_t p = i / M, t = i % M;
  const stats_rows<T>& s = st[p];
  row::depth_stats_token(src, n, t, s.w, s.g, D, s.o + t * s.so, s.m + t, s.l + t, s.logits, s.sl, s.normalized);
}

template <class T>
__global__ void depth_merge(stats_rows<T> st, index_t n, row::source_rows<T> partial, bool has_partial, index_t M,
                            index_t D, T* h, index_t sh, T* alpha, index_t sa) {
  const index_t t = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (t < M)
    row::depth_merge_token(st.o + t * st.so, st.m[t], st.l[t], st.logits, st.sl, n, has_partial ? &partial : nullptr, t,
                           st.w, st.g, D, h + t * sh, alpha, sa);
}

template <class T>
__global__ void depth_backward_tokens(const row::source_rows<T>* src, index_t n, const row::point_grad_rows<T>* pts,
                                      index_t S, index_t M, index_t D, const row::dsource_rows<T>* dsrc) {
  const index_t t = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (t < M) row::depth_backward_token(src, n, pts, S, t, D, dsrc);
}

template <class T>
__global__ void depth_backward_channels(const row::source_rows<T>* src, index_t n, const row::point_grad_rows<T>* pts,
                                        index_t S, index_t M, index_t D) {
  const index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (i < S * D) row::depth_backward_channel(src, n, pts[i / D], M, i % D);
}

}  // namespace cuda_kernels

namespace cuda_detail {
template <class T>
std::vector<row::source_rows<T>> source_rows_of(std::span<const depth_source<T, device_space>> sources) {
  std::vector<row::source_rows<T>> out;
  out.reserve(sources.size());
  for (const auto& s : sources) out.push_back({s.value.data, s.value.stride, s.inv_rms});
  return out;
}
}  // namespace cuda_detail

template <class T>
index_t key_norm_stats(backend::cuda, no_deduce<const_matrix_view<T, device_space>> v /*(M,D)*/, no_deduce<T> eps,
                       T* inv_rms /*(M), device*/) {
  if (v.rows == 0) return -1;
  int* bad = static_cast<int*>(cuda_detail::scratch_buffer().get(sizeof(int)));
  const int none = INT_MAX;
  cuda::copy_to_device(&none, bad, 1);
  cuda_kernels::key_norm_stats<T><<<cuda_detail::grid_for(v.rows, "key_norm_stats"), cuda_detail::block_threads>>>(
      v.data, v.stride, v.rows, v.cols, eps, inv_rms, bad);
  cuda::check_launch("key_norm_stats kernel");
  int first = none;
  cuda::copy_to_host(bad, &first, 1);
  return first == none ? -1 : first;
}

template <class T>
void row_dots(backend::cuda, no_deduce<const_matrix_view<T, device_space>> a /*(M,D)*/,
              no_deduce<const_matrix_view<T, device_space>> b /*(M,D)*/, T* out /*(M), device*/) {
  if (a.rows == 0) return;
  cuda_kernels::row_dots<T><<<cuda_detail::grid_for(a.rows, "row_dots"), cuda_detail::block_threads>>>(
      a.data, a.stride, b.data, b.stride, a.rows, a.cols, out);
  cuda::check_launch("row_dots kernel");
}

template <class T>
void depth_attention_forward(backend::cuda, std::span<const depth_source<T, device_space>> sources, depth_query<T> q,
                             no_deduce<matrix_view<T, device_space>> h /*(M,D)*/,
                             no_deduce<matrix_view<T, device_space>> alpha /*(n,M)*/) {
  if (h.rows == 0 || sources.empty()) return;
  const auto rows = cuda_detail::source_rows_of<T>(sources);
  cuda_detail::device_args args;
  const auto o_src = args.add(rows.data(), rows.size());
  args.upload();
  cuda_kernels::depth_forward<T><<<cuda_detail::grid_for(h.rows, "depth_attention_forward"), cuda_detail::block_threads>>>(
      args.at<row::source_rows<T>>(o_src), static_cast<index_t>(rows.size()), q.w, q.g, h.rows, h.cols, h.data,
      h.stride, alpha.data, alpha.stride);
  cuda::check_launch("depth_attention_forward kernel");
}

template <class T>
void depth_attention_stats(backend::cuda, std::span<const depth_source<T, device_space>> sources,
                           no_deduce<std::span<const depth_query<T>>> queries,
                           no_deduce<std::span<const depth_stats<T, device_space>>> out) {
  const index_t S = static_cast<index_t>(queries.size());
  if (S == 0 || out[0].o.rows == 0) return;
  const index_t M = out[0].o.rows, D = out[0].o.cols;
  const auto rows = cuda_detail::source_rows_of<T>(sources);
  std::vector<cuda_kernels::stats_rows<T>> st;
  for (index_t p = 0; p < S; ++p)
    st.push_back({queries[p].w, queries[p].g, out[p].o.data, out[p].o.stride, out[p].m, out[p].l, out[p].logits.data,
                  out[p].logits.stride, out[p].normalized});
  cuda_detail::device_args args;
  const auto o_src = args.add(rows.data(), rows.size());
  const auto o_st = args.add(st.data(), st.size());
  args.upload();
  cuda_kernels::depth_stats<T><<<cuda_detail::grid_for(S * M, "depth_attention_stats"), cuda_detail::block_threads>>>(
      args.at<row::source_rows<T>>(o_src), static_cast<index_t>(rows.size()), args.at<cuda_kernels::stats_rows<T>>(o_st),
      S, M, D);
  cuda::check_launch("depth_attention_stats kernel");
}

template <class T>
void depth_attention_merge(backend::cuda, const depth_stats<T, device_space>& st,
                           const depth_source<T, device_space>* partial, no_deduce<depth_query<T>> q,
                           no_deduce<matrix_view<T, device_space>> h /*(M,D)*/,
                           no_deduce<matrix_view<T, device_space>> alpha /*(n[+1],M)*/) {
  if (h.rows == 0) return;
  const cuda_kernels::stats_rows<T> s{q.w, q.g, st.o.data, st.o.stride, st.m, st.l, st.logits.data, st.logits.stride,
                                      st.normalized};
  const row::source_rows<T> p = partial ? row::source_rows<T>{partial->value.data, partial->value.stride, partial->inv_rms}
                                        : row::source_rows<T>{nullptr, 0, nullptr};
  cuda_kernels::depth_merge<T><<<cuda_detail::grid_for(h.rows, "depth_attention_merge"), cuda_detail::block_threads>>>(
      s, st.logits.rows, p, partial != nullptr, h.rows, h.cols, h.data, h.stride, alpha.data, alpha.stride);
  cuda::check_launch("depth_attention_merge kernel");
}

// The fused forms of the cpu path, as their two launches here.
template <class T>
index_t sum_key_norm_stats(backend::cuda b, no_deduce<const_matrix_view<T, device_space>> x /*(M,D)*/,
                           no_deduce<const_matrix_view<T, device_space>> y /*(M,D)*/,
                           no_deduce<matrix_view<T, device_space>> out /*(M,D)*/, no_deduce<T> eps, T* inv_rms /*(M), device*/) {
  sum_to(x, y, out);
  return key_norm_stats(b, const_matrix_view<T, device_space>(out), eps, inv_rms);
}

template <class T>
index_t depth_attention_forward_normed(backend::cuda b, std::span<const depth_source<T, device_space>> sources,
                                       no_deduce<const_matrix_view<T, device_space>> partial /*(M,D)*/, no_deduce<T> eps,
                                       T* partial_inv_rms /*(M), device*/, no_deduce<depth_query<T>> q,
                                       no_deduce<matrix_view<T, device_space>> h /*(M,D)*/,
                                       no_deduce<matrix_view<T, device_space>> alpha /*(n+1,M)*/) {
  if (const index_t bad = key_norm_stats(b, partial, eps, partial_inv_rms); bad >= 0) return bad;
  std::vector<depth_source<T, device_space>> all(sources.begin(), sources.end());
  all.push_back({partial, partial_inv_rms});
  depth_attention_forward(b, std::span<const depth_source<T, device_space>>(all), q, h, alpha);
  return -1;
}

template <class T>
index_t depth_attention_merge_normed(backend::cuda b, const depth_stats<T, device_space>& st,
                                     no_deduce<const_matrix_view<T, device_space>> partial /*(M,D)*/, no_deduce<T> eps,
                                     T* partial_inv_rms /*(M), device*/, no_deduce<depth_query<T>> q,
                                     no_deduce<matrix_view<T, device_space>> h /*(M,D)*/,
                                     no_deduce<matrix_view<T, device_space>> alpha /*(n+1,M)*/) {
  if (const index_t bad = key_norm_stats(b, partial, eps, partial_inv_rms); bad >= 0) return bad;
  const depth_source<T, device_space> part{partial, partial_inv_rms};
  depth_attention_merge(b, st, &part, q, h, alpha);
  return -1;
}

// Two launches: the token pass (dS and the source gradients, one thread per token) and the
// channel pass (dw, dg, one thread per (point, channel), tokens summed in order: no atomics).
template <class T>
void depth_attention_backward(backend::cuda, std::span<const depth_source<T, device_space>> sources,
                              no_deduce<std::span<const depth_query_grad<T, device_space>>> points,
                              no_deduce<std::span<const matrix_view<T, device_space>>> dsources /*n × (M,D)*/,
                              grad_write mode = grad_write::accumulate) {
  const index_t S = static_cast<index_t>(points.size()), n = static_cast<index_t>(sources.size());
  if (S == 0 || n == 0 || points[0].dh.rows == 0) return;
  const index_t M = points[0].dh.rows, D = points[0].dh.cols;
  if (mode == grad_write::overwrite)  // the token kernel accumulates: start it from zero
    for (const auto& d : dsources)
      cuda::check(cudaMemset2D(d.data, static_cast<std::size_t>(d.stride) * sizeof(T), 0,
                               static_cast<std::size_t>(d.cols) * sizeof(T), static_cast<std::size_t>(d.rows)),
                  "cudaMemset2D");
  T* dS = static_cast<T*>(cuda_detail::scratch_buffer().get(static_cast<std::size_t>(S * n * M) * sizeof(T)));  // S × (n,M)
  const auto rows = cuda_detail::source_rows_of<T>(sources);
  std::vector<row::point_grad_rows<T>> pts;
  for (index_t p = 0; p < S; ++p) {
    const auto& pt = points[p];
    pts.push_back({pt.q.w, pt.q.g, pt.alpha.data, pt.alpha.stride, pt.c, pt.dh.data, pt.dh.stride, dS + p * n * M, M,
                   pt.dw, pt.dg});
  }
  std::vector<row::dsource_rows<T>> drows;
  for (const auto& d : dsources) drows.push_back({d.data, d.stride});
  cuda_detail::device_args args;
  const auto o_src = args.add(rows.data(), rows.size());
  const auto o_pts = args.add(pts.data(), pts.size());
  const auto o_d = args.add(drows.data(), drows.size());
  args.upload();
  cuda_kernels::depth_backward_tokens<T>
      <<<cuda_detail::grid_for(M, "depth_attention_backward"), cuda_detail::block_threads>>>(
          args.at<row::source_rows<T>>(o_src), n, args.at<row::point_grad_rows<T>>(o_pts), S, M, D,
          args.at<row::dsource_rows<T>>(o_d));
  cuda::check_launch("depth_attention_backward token kernel");
  cuda_kernels::depth_backward_channels<T>
      <<<cuda_detail::grid_for(S * D, "depth_attention_backward"), cuda_detail::block_threads>>>(
          args.at<row::source_rows<T>>(o_src), n, args.at<row::point_grad_rows<T>>(o_pts), S, M, D);
  cuda::check_launch("depth_attention_backward channel kernel");
}

ATTNRES_CUDA_REJECT_HOST_VIEWS(key_norm_stats)
ATTNRES_CUDA_REJECT_HOST_VIEWS(row_dots)

}  // namespace attnres::ops
