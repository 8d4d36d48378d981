// The machine's limits, measured in the same way every time, so that the library's numbers can
// be read as a fraction of them (docs/performance.md):
//
//   fma_peak/<isa>/threads:N   independent FMA chains in registers (no memory traffic):
//                              avx2 = 8 floats per FMA, avx512 = 16 (where the CPU has it)
//   triad/threads:N            STREAM triad a = b + s·c over 3 × 32 MiB (bytes moved: 3 per float ×4)
//   sgemm/<impl>/M/N/K         C = A·Bᵀ at transformer shapes, row-major float:
//                              eigen = Eigen 3.4's own kernels (this file is compiled without
//                              EIGEN_USE_BLAS), blas = sgemm_ of the BLAS attnres links (OpenBLAS)
//
// GFLOP/s and GB/s are 10⁹ per second. Threads come from OpenMP (the threads:N argument).
//
//   build/release/bench/bench_machine --benchmark_repetitions=3 --benchmark_report_aggregates_only=true

#include <Eigen/Core>
#include <benchmark/benchmark.h>

#include <immintrin.h>
#include <omp.h>

#include <cstdint>
#include <string>
#include <vector>

#if defined(BENCH_HAVE_BLAS)
extern "C" void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
                       const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
                       const float* beta, float* c, const int* ldc);
#endif

namespace {

// 12 independent accumulators: enough to cover FMA latency (4 cycles) × 2 pipes with margin.
// Returns the FLOPs done (2 per lane per FMA).
__attribute__((target("avx2,fma"))) double fma_loop_avx2(std::int64_t iters, float* sink) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(1.0f + 0.001f * static_cast<float>(i));
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (std::int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  __m256 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, acc[i]);
  *sink = _mm256_cvtss_f32(s);
  return 2.0 * 8 * 12 * static_cast<double>(iters);
}

__attribute__((target("avx512f"))) double fma_loop_avx512(std::int64_t iters, float* sink) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(1.0f + 0.001f * static_cast<float>(i));
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (std::int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  __m512 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, acc[i]);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, s);
  *sink = lanes[0] + lanes[15];
  return 2.0 * 16 * 12 * static_cast<double>(iters);
}

template <bool wide>
void fma_peak(benchmark::State& s) {
  if (wide && !__builtin_cpu_supports("avx512f")) {
    s.SkipWithError("no AVX-512 on this CPU");
    return;
  }
  const int threads = static_cast<int>(s.range(0));
  constexpr std::int64_t iters = 2'000'000;
  double flops = 0;
  std::vector<float> sink(static_cast<std::size_t>(threads) * 16);
  for (auto _ : s) {
    double total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
    {
      float* out = sink.data() + 16 * omp_get_thread_num();
      total += wide ? fma_loop_avx512(iters, out) : fma_loop_avx2(iters, out);
    }
    flops += total;
  }
  benchmark::DoNotOptimize(sink.data());
  s.counters["GFLOP/s"] = benchmark::Counter(flops / 1e9, benchmark::Counter::kIsRate);
}

void triad(benchmark::State& s) {
  const int threads = static_cast<int>(s.range(0));
  const std::int64_t n = std::int64_t(8) << 20;  // 32 MiB per array: well beyond the caches
  std::vector<float> a(static_cast<std::size_t>(n)), b(a.size(), 1.0f), c(a.size(), 2.0f);
  const float k = 3.0f;
  for (auto _ : s) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (std::int64_t i = 0; i < n; ++i) a[static_cast<std::size_t>(i)] = b[static_cast<std::size_t>(i)] + k * c[static_cast<std::size_t>(i)];
    benchmark::DoNotOptimize(a.data());
  }
  s.counters["GB/s"] = benchmark::Counter(3.0 * 4.0 * static_cast<double>(n) * static_cast<double>(s.iterations()) / 1e9,
                                          benchmark::Counter::kIsRate);
}

using row_major = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

template <bool blas>
void sgemm(benchmark::State& s) {
  const int M = static_cast<int>(s.range(0)), N = static_cast<int>(s.range(1)), K = static_cast<int>(s.range(2));
  const row_major A = row_major::Random(M, K), B = row_major::Random(N, K);
  row_major C(M, N);
  for (auto _ : s) {
    if constexpr (blas) {
#if defined(BENCH_HAVE_BLAS)
      // Row-major C = A Bᵀ is column-major Cᵀ = B Aᵀ: sgemm('T', 'N') on the column-major views.
      const float one = 1, zero = 0;
      sgemm_("T", "N", &N, &M, &K, &one, B.data(), &K, A.data(), &K, &zero, C.data(), &N);
#endif
    } else {
      C.noalias() = A * B.transpose();
    }
    benchmark::DoNotOptimize(C.data());
  }
  s.counters["GFLOP/s"] = benchmark::Counter(2.0 * M * N * K * static_cast<double>(s.iterations()) / 1e9,
                                             benchmark::Counter::kIsRate);
}

void sgemm_shapes(benchmark::internal::Benchmark* b) {
  // (M tokens, N outputs, K inputs) of the default model (D = 256, F = 704, M = 2048) and of d = 512
  for (auto [m, n, k] : {std::tuple{2048, 256, 256}, {2048, 704, 256}, {2048, 256, 704}, {2048, 768, 256},
                         {2048, 1024, 256}, {2048, 512, 512}, {2048, 1408, 512}})
    b->Args({m, n, k});
}

}  // namespace

int main(int argc, char** argv) {
  const int max_threads = omp_get_max_threads();
  for (int t = 1; t <= max_threads; t *= 2) {
    benchmark::RegisterBenchmark("fma_peak/avx2", fma_peak<false>)->Arg(t)->ArgName("threads")->UseRealTime();
    benchmark::RegisterBenchmark("fma_peak/avx512", fma_peak<true>)->Arg(t)->ArgName("threads")->UseRealTime();
    benchmark::RegisterBenchmark("triad", triad)->Arg(t)->ArgName("threads")->UseRealTime();
  }
  benchmark::RegisterBenchmark("sgemm/eigen", sgemm<false>)->Apply(sgemm_shapes)->UseRealTime();
#if defined(BENCH_HAVE_BLAS)
  benchmark::RegisterBenchmark("sgemm/blas", sgemm<true>)->Apply(sgemm_shapes)->UseRealTime();
#endif
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
