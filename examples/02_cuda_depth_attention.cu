// 02 — depth attention on the GPU (needs the CUDA backend: cmake --preset cuda).
//
// One block of Block AttnRes computed the paper's two-phase way (Algorithm 1) on the device:
// phase 1 gathers the statistics of all S queries of the block over the completed block sums in
// one launch; phase 2 merges each query with the current partial sum by online softmax. The
// result is checked against the cpu backend's one-shot softmax over the same sources, and the
// depth-attention weights of the last gather point are printed.
//
// The only difference from host code is the backend tag and where the tensors live:
// cuda::device_tensor<float> instead of tensor<float>, cuda::upload / cuda::download between them.
//
// Usage: 02_cuda_depth_attention        (prints "skipped: no CUDA device" and exits 77 without one)

#include <attnres/cuda.hpp>

#include <cmath>
#include <cstdio>
#include <span>
#include <vector>

namespace cuda = attnres::cuda;
namespace ops = attnres::ops;
using attnres::device_space;
using attnres::index_t;
using attnres::tensor;

int main() {
  if (!attnres::backend_traits<attnres::backend::cuda>::available()) {
    std::puts("skipped: no CUDA device (this example needs a GPU; the CPU tests in tests/cuda/ check its arithmetic)");
    return 77;
  }
  const index_t M = 1024, D = 256, n = 4, S = 4;  // tokens, width, completed block sums, queries per block
  attnres::rng gen(7);

  // The completed block sums b_0..b_{n-1} and the current partial sum, of growing magnitude.
  std::vector<tensor<float>> b;
  for (index_t j = 0; j <= n; ++j) {
    b.emplace_back(std::vector<index_t>{M, D});
    attnres::fill_normal(b.back(), gen, 0.0, 1.0 + double(j));
  }
  std::vector<cuda::device_tensor<float>> db, dr;
  std::vector<ops::depth_source<float, device_space>> sources;
  for (index_t j = 0; j <= n; ++j) {
    db.push_back(cuda::upload(b[j]));
    dr.emplace_back(std::vector<index_t>{M});
    ops::key_norm_stats(attnres::backend::cuda{}, db[j].mat(), 1e-6f, dr[j].data());  // 1/r per token, once per source
    sources.push_back({db[j].mat(), dr[j].data()});
  }
  // S pseudo-queries w and key-norm gains g (random, as after some training).
  std::vector<tensor<float>> w, g;
  std::vector<cuda::device_tensor<float>> dw, dg;
  std::vector<ops::depth_query<float>> queries;
  for (index_t p = 0; p < S; ++p) {
    w.emplace_back(std::vector<index_t>{D});
    g.emplace_back(std::vector<index_t>{D});
    attnres::fill_normal(w.back(), gen, 0.0, 0.1);
    g.back().fill(1.0f);
    dw.push_back(cuda::upload(w.back()));
    dg.push_back(cuda::upload(g.back()));
    queries.push_back({dw.back().data(), dg.back().data()});
  }

  // Phase 1: statistics (o, m, ℓ, logits) of all S queries over the n completed sums, one launch.
  std::vector<cuda::device_tensor<float>> o, m, l, lg;
  std::vector<ops::depth_stats<float, device_space>> stats;
  for (index_t p = 0; p < S; ++p) {
    o.emplace_back(std::vector<index_t>{M, D});
    m.emplace_back(std::vector<index_t>{M});
    l.emplace_back(std::vector<index_t>{M});
    lg.emplace_back(std::vector<index_t>{n, M});
  }
  for (index_t p = 0; p < S; ++p) stats.push_back({o[p].mat(), m[p].data(), l[p].data(), lg[p].mat()});
  const std::span<const ops::depth_source<float, device_space>> completed(sources.data(), n);
  ops::depth_attention_stats(attnres::backend::cuda{}, completed, std::span<const ops::depth_query<float>>(queries),
                             std::span<const ops::depth_stats<float, device_space>>(stats));

  // Phase 2 for the last query: merge with the partial sum (the block's current position).
  cuda::device_tensor<float> h({M, D}), alpha({n + 1, M});
  ops::depth_attention_merge(attnres::backend::cuda{}, stats[S - 1], &sources[n], queries[S - 1], h.mat(), alpha.mat());

  // The same gather on the cpu, one-shot over all n + 1 sources.
  std::vector<tensor<float>> r;
  std::vector<ops::depth_source<float>> host_sources;
  for (index_t j = 0; j <= n; ++j) {
    r.emplace_back(std::vector<index_t>{M});
    ops::key_norm_stats(attnres::backend::cpu{}, b[j].mat(), 1e-6f, r[j].data());
  }
  for (index_t j = 0; j <= n; ++j) host_sources.push_back({b[j].mat(), r[j].data()});
  tensor<float> h_cpu({M, D}), a_cpu({n + 1, M});
  ops::depth_attention_forward(attnres::backend::cpu{}, std::span<const ops::depth_source<float>>(host_sources),
                               {w[S - 1].data(), g[S - 1].data()}, h_cpu.mat(), a_cpu.mat());

  const tensor<float> h_gpu = cuda::download(h), a_gpu = cuda::download(alpha);
  double worst = 0;
  for (index_t i = 0; i < h_gpu.size(); ++i) worst = std::max(worst, double(std::abs(h_gpu[i] - h_cpu[i])));
  std::printf("two-phase on the GPU vs one-shot on the CPU: max |Δh| = %.3g over %td values\n", worst, h_gpu.size());
  std::printf("mean α of the last gather point over its %td sources (b_0 .. b_%td, partial):\n ", n + 1, n - 1);
  for (index_t j = 0; j <= n; ++j) {
    double s = 0;
    for (index_t t = 0; t < M; ++t) s += a_gpu[j * M + t];
    std::printf(" %.3f", s / double(M));
  }
  std::printf("\n");
  return worst < 1e-3 ? 0 : 1;
}
