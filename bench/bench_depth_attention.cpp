// Benchmarks of the depth-attention op (include/attnres/ops/depth_attention.hpp), float, on the
// reference and cpu backends, at the default model width D = 256 and M = 2048 tokens (batch 8 ×
// sequence 256), for n ∈ {2, 5, 9, 17} sources.
//
//   key_norm_stats/<backend>                 1/r of one (M,D) source
//   forward/<backend>/n:N                    one-shot forward of one gather point
//   stats/<backend>/n:N/S:S                  Phase 1 (S queries over the same n sources)
//   merge/<backend>/n:N                      Phase 2 (statistics over n sources + a partial)
//   backward/<backend>/n:N/S:S               backward of S points over the same n sources
//   backward_streams/n:N/S:S                 the cpu backward's memory streams with an add in place of
//                                            its arithmetic: what the memory system alone allows
//   isa_ratio/{stats,merge,backward}/n:N/S:S the cpu op on the AVX-512 row kernels against the build's
//                                            own, alternating in one process: medians of the per-round
//                                            times and of their ratio (core/cpu_isa.hpp; skipped, with
//                                            an error line, on a CPU without AVX-512)
//   isa_ratio/decode_forward/n:N/S:1         the same for 100 one-token forwards (decoding's gather,
//                                            its rows in cache): the times are per 100 calls
//
// Reported: time per call (wall clock: the cpu backend is multi-threaded, so every rate uses
// real time), items/s = tokens/s, bytes/s and a "GB/s" counter (10⁹ bytes per second) computed
// from the bytes each op must read + write at least once (every (M,D) tensor or (n,M) / (M)
// vector it touches counted once; see the *_bytes functions below), and "omp_threads" (the OpenMP
// thread count the cpu backend may use; the reference backend is always single-threaded).
//
// Run with --benchmark_repetitions=5 --benchmark_report_aggregates_only=true and compare
// medians; see bench/README.md.

#include <attnres/core/backend.hpp>
#include <attnres/core/cpu_isa.hpp>
#include <attnres/core/parallel.hpp>
#include <attnres/core/random.hpp>
#include <attnres/core/simd.hpp>
#include <attnres/core/tensor.hpp>
#include <attnres/ops/depth_attention.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace {

using idx = std::ptrdiff_t;  // attnres's index type
using attnres::tensor;
using T = float;

constexpr idx kM = 2048;  // tokens: batch 8 × sequence 256
constexpr idx kD = 256;   // model width
constexpr T kEps = T(1e-6);
constexpr std::int64_t kSources[] = {2, 5, 9, 17};
constexpr std::int64_t kQueries[] = {1, 2, 4};  // 2: Block<8> of 16 sublayers
constexpr double kFloat = sizeof(T);

// ---- test data ----------------------------------------------------------------------------

tensor<T> normal(std::vector<idx> shape, attnres::rng& gen, double mean, double stddev) {
  tensor<T> t(std::move(shape));
  attnres::fill_normal(t, gen, mean, stddev);
  return t;
}

// n random sources of M tokens with their key-norm statistics.
struct sources_data {
  std::vector<tensor<T>> value, inv_rms;
  std::vector<attnres::ops::depth_source<T>> src;

  sources_data(idx n, attnres::rng& gen, idx M = kM) {
    for (idx j = 0; j < n; ++j) {
      value.push_back(normal({M, kD}, gen, 0.0, 1.0));
      inv_rms.emplace_back(std::vector<idx>{M});
      attnres::ops::key_norm_stats(attnres::backend::cpu{}, value.back().mat(), kEps, inv_rms.back().data());
    }
    for (idx j = 0; j < n; ++j) src.push_back({value[j].mat(), inv_rms[j].data()});
  }
  std::span<const attnres::ops::depth_source<T>> span() const { return src; }
};

// S gather-point parameters: queries ~ N(0, 0.5), gains ~ N(1, 0.1).
struct queries_data {
  std::vector<tensor<T>> w, g;
  std::vector<attnres::ops::depth_query<T>> q;

  queries_data(idx S, attnres::rng& gen) {
    for (idx p = 0; p < S; ++p) {
      w.push_back(normal({kD}, gen, 0.0, 0.5));
      g.push_back(normal({kD}, gen, 1.0, 0.1));
    }
    for (idx p = 0; p < S; ++p) q.push_back({w[p].data(), g[p].data()});
  }
};

// ---- bytes each op must move (floats → bytes at the end) -----------------------------------

// reads v (M,D), writes 1/r (M)
double key_norm_bytes() { return kFloat * double(kM * kD + kM); }
// reads n sources (M,D) and their 1/r (M); writes h (M,D) and α (n,M)
double forward_bytes(idx n) { return kFloat * double(n * kM * kD + n * kM + kM * kD + n * kM); }
// reads n sources and 1/r once for all S queries; writes S × (o (M,D), m, ℓ (M), logits (n,M))
double stats_bytes(idx n, idx S) {
  return kFloat * double(n * kM * kD + n * kM + S * (kM * kD + 2 * kM + n * kM));
}
// reads o (M,D), m, ℓ (M), logits (n,M), the partial (M,D) and its 1/r (M); writes h (M,D), α (n+1,M)
double merge_bytes(idx n) {
  return kFloat * double(kM * kD + 2 * kM + n * kM + kM * kD + kM + kM * kD + (n + 1) * kM);
}
// reads n sources + 1/r, and per point dh (M,D), α (n,M), c (M); reads and writes the n
// accumulated source gradients (M,D); dw, dg (D) are negligible and not counted
double backward_bytes(idx n, idx S) {
  return kFloat * double(n * kM * kD + n * kM + S * (kM * kD + n * kM + kM) + 2 * n * kM * kD);
}

template <class Backend>
int thread_count() {
  return attnres::backend_traits<Backend>::is_parallel ? attnres::max_threads() : 1;
}

template <class Backend>
void report(benchmark::State& state, double bytes_per_call) {
  const auto iters = static_cast<std::int64_t>(state.iterations());
  state.SetItemsProcessed(iters * kM);
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes_per_call) * iters);
  state.counters["GB/s"] = benchmark::Counter(bytes_per_call * double(iters) * 1e-9, benchmark::Counter::kIsRate);
  state.counters["omp_threads"] = thread_count<Backend>();
}

// ---- benchmarks ----------------------------------------------------------------------------

template <class Backend>
void bm_key_norm_stats(benchmark::State& state) {
  attnres::rng gen(1);
  const tensor<T> v = normal({kM, kD}, gen, 0.0, 1.0);
  tensor<T> inv_rms({kM});
  for (auto _ : state) {
    benchmark::DoNotOptimize(attnres::ops::key_norm_stats(Backend{}, v.mat(), kEps, inv_rms.data()));
    benchmark::ClobberMemory();
  }
  report<Backend>(state, key_norm_bytes());
}

template <class Backend>
void bm_forward(benchmark::State& state) {
  const idx n = state.range(0);
  attnres::rng gen(2);
  const sources_data s(n, gen);
  const queries_data q(1, gen);
  tensor<T> h({kM, kD}), alpha({n, kM});
  for (auto _ : state) {
    attnres::ops::depth_attention_forward(Backend{}, s.span(), q.q[0], h.mat(), alpha.mat());
    benchmark::DoNotOptimize(h.data());
    benchmark::ClobberMemory();
  }
  report<Backend>(state, forward_bytes(n));
}

// Each op's data set up once, and one call of it on a backend (the bodies the benchmarks time).
struct stats_case {
  sources_data s;
  queries_data q;
  std::vector<tensor<T>> o, m, l, logits;
  std::vector<attnres::ops::depth_stats<T>> out;
  stats_case(idx n, idx S, attnres::rng&& gen) : s(n, gen), q(S, gen) {
    for (idx p = 0; p < S; ++p) {
      o.emplace_back(std::vector<idx>{kM, kD});
      m.emplace_back(std::vector<idx>{kM});
      l.emplace_back(std::vector<idx>{kM});
      logits.emplace_back(std::vector<idx>{n, kM});
    }
    for (idx p = 0; p < S; ++p) out.push_back({o[p].mat(), m[p].data(), l[p].data(), logits[p].mat()});
  }
  template <class Backend>
  void run() {
    attnres::ops::depth_attention_stats(Backend{}, s.span(), std::span<const attnres::ops::depth_query<T>>(q.q),
                                        std::span<const attnres::ops::depth_stats<T>>(out));
    benchmark::DoNotOptimize(o[0].data());
    benchmark::ClobberMemory();
  }
};

struct merge_case {
  sources_data s, partial;
  queries_data q;
  tensor<T> o, m, l, logits, h, alpha;
  attnres::ops::depth_stats<T> st;
  merge_case(idx n, idx, attnres::rng&& gen)
      : s(n, gen), partial(1, gen), q(1, gen), o({kM, kD}), m({kM}), l({kM}), logits({n, kM}), h({kM, kD}),
        alpha({n + 1, kM}), st{o.mat(), m.data(), l.data(), logits.mat()} {
    // real phase-1 statistics to merge (computed once, outside the timed loop)
    attnres::ops::depth_attention_stats(attnres::backend::cpu{}, s.span(),
                                        std::span<const attnres::ops::depth_query<T>>(q.q),
                                        std::span<const attnres::ops::depth_stats<T>>(&st, 1));
  }
  template <class Backend>
  void run() {
    attnres::ops::depth_attention_merge(Backend{}, st, &partial.src[0], q.q[0], h.mat(), alpha.mat());
    benchmark::DoNotOptimize(h.data());
    benchmark::ClobberMemory();
  }
};

struct backward_case {
  sources_data s;
  queries_data q;
  std::vector<tensor<T>> alpha, dh, c, dw, dg, dsrc_t;
  std::vector<attnres::ops::depth_query_grad<T>> points;
  std::vector<attnres::matrix_view<T>> dsrc;
  backward_case(idx n, idx S, attnres::rng&& gen) : s(n, gen), q(S, gen) {
    // Per point: a real α and h from the forward, a random dh, and c = dh·h.
    for (idx p = 0; p < S; ++p) {
      tensor<T> h({kM, kD});
      alpha.emplace_back(std::vector<idx>{n, kM});
      attnres::ops::depth_attention_forward(attnres::backend::cpu{}, s.span(), q.q[p], h.mat(), alpha.back().mat());
      dh.push_back(normal({kM, kD}, gen, 0.0, 1.0));
      c.emplace_back(std::vector<idx>{kM});
      attnres::ops::row_dots(attnres::backend::cpu{}, dh.back().mat(), h.mat(), c.back().data());
      dw.emplace_back(std::vector<idx>{kD});
      dg.emplace_back(std::vector<idx>{kD});
    }
    for (idx p = 0; p < S; ++p)
      points.push_back({q.q[p], alpha[p].mat(), c[p].data(), dh[p].mat(), dw[p].data(), dg[p].data()});
    for (idx j = 0; j < n; ++j) dsrc_t.emplace_back(std::vector<idx>{kM, kD});
    for (idx j = 0; j < n; ++j) dsrc.push_back(dsrc_t[j].mat());
  }
  // The op accumulates into dsources, dw and dg; growing sums are harmless for timing.
  template <class Backend>
  void run() {
    attnres::ops::depth_attention_backward(Backend{}, s.span(),
                                           std::span<const attnres::ops::depth_query_grad<T>>(points),
                                           std::span<const attnres::matrix_view<T>>(dsrc));
    benchmark::DoNotOptimize(dsrc_t[0].data());
    benchmark::ClobberMemory();
  }
};

// Decoding's gather: the one-shot forward of one token over n sources, whose rows are in cache
// (a decode step asks for them before the gather, block_attn_res.hpp). A run is 100 calls, so
// the clock reads do not weigh on a call of about 100 ns.
struct decode_case {
  sources_data s;
  queries_data q;
  tensor<T> h, alpha;
  decode_case(idx n, idx, attnres::rng&& gen) : s(n, gen, 1), q(1, gen), h({1, kD}), alpha({n, 1}) {}
  template <class Backend>
  void run() {
    for (int k = 0; k < 100; ++k) {
      attnres::ops::depth_attention_forward(Backend{}, s.span(), q.q[0], h.mat(), alpha.mat());
      benchmark::DoNotOptimize(h.data());
      benchmark::ClobberMemory();
    }
  }
};

template <class Backend>
void bm_stats(benchmark::State& state) {
  const idx n = state.range(0), S = state.range(1);
  stats_case op(n, S, attnres::rng(3));
  for (auto _ : state) op.run<Backend>();
  report<Backend>(state, stats_bytes(n, S));
}

template <class Backend>
void bm_merge(benchmark::State& state) {
  const idx n = state.range(0);
  merge_case op(n, 1, attnres::rng(4));
  for (auto _ : state) op.run<Backend>();
  report<Backend>(state, merge_bytes(n));
}

template <class Backend>
void bm_backward(benchmark::State& state) {
  const idx n = state.range(0), S = state.range(1);
  backward_case op(n, S, attnres::rng(5));
  for (auto _ : state) op.run<Backend>();
  report<Backend>(state, backward_bytes(n, S));
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t k = v.size() / 2;
  return v.size() % 2 ? v[k] : 0.5 * (v[k - 1] + v[k]);
}

// The cpu op on the AVX-512 row kernels against the same op on the build's own, in one process:
// each iteration is a round of kCalls calls on one, then kCalls on the other (which goes first
// alternates), and the counters are medians over rounds — the machine's drift between separate
// runs is larger than the difference (docs/performance.md). ratio = AVX-512 time / baseline time.
template <class Case>
void bm_isa_ratio(benchmark::State& state) {
  if (!attnres::cpu_isa_supported(attnres::cpu_isa::avx512)) {
    state.SkipWithError("no AVX-512 on this CPU");
    return;
  }
  constexpr int kCalls = 5;
  Case op(state.range(0), state.range(1), attnres::rng(6));
  std::vector<double> t_base, t_512, ratio;
  auto time_calls = [&](attnres::cpu_isa isa) {
    const attnres::cpu_isa_scope use(isa);
    op.template run<attnres::backend::cpu>();  // one untimed call: rows of the last round are cold
    const auto start = std::chrono::steady_clock::now();
    for (int k = 0; k < kCalls; ++k) op.template run<attnres::backend::cpu>();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / kCalls;
  };
  bool base_first = true;
  for (auto _ : state) {
    double tb, t5;
    if (base_first) {
      tb = time_calls(attnres::cpu_isa::baseline);
      t5 = time_calls(attnres::cpu_isa::avx512);
    } else {
      t5 = time_calls(attnres::cpu_isa::avx512);
      tb = time_calls(attnres::cpu_isa::baseline);
    }
    base_first = !base_first;
    t_base.push_back(tb);
    t_512.push_back(t5);
    ratio.push_back(t5 / tb);
  }
  state.counters["baseline_us"] = 1e6 * median(t_base);
  state.counters["avx512_us"] = 1e6 * median(t_512);
  state.counters["ratio"] = median(ratio);
  std::sort(ratio.begin(), ratio.end());
  state.counters["ratio_q25"] = ratio[ratio.size() / 4];
  state.counters["ratio_q75"] = ratio[(3 * ratio.size()) / 4];
  state.counters["rounds"] = static_cast<double>(ratio.size());
}

// The rows the cpu backward streams, in its order (sources outer, each thread's tokens inner):
// per (token, source) the source row, its gradient row (read and written) and the S dh rows,
// with dv += v + Σ_p dh_p in place of the arithmetic. Its time is the floor the memory system
// sets for the backward on this machine; the gap to backward/cpu is time spent waiting for rows
// or computing (docs/performance.md).
void bm_backward_streams(benchmark::State& state) {
  const idx n = state.range(0), S = state.range(1);
  attnres::rng gen(5);
  const sources_data s(n, gen);
  std::vector<tensor<T>> dh, dsrc;
  for (idx p = 0; p < S; ++p) dh.push_back(normal({kM, kD}, gen, 0.0, 1.0));
  for (idx j = 0; j < n; ++j) dsrc.emplace_back(std::vector<idx>{kM, kD});
  for (auto _ : state) {
    attnres::parallel_chunks(kM, 16, [&](idx, idx begin, idx end) {
      for (idx j = 0; j < n; ++j)
        for (idx t = begin; t < end; ++t) {
          // D from the tensor, not the constant kD: g++ 12 misreads simd::add's tail loop for a
          // known D (a false -Waggressive-loop-optimizations)
          const idx D = dsrc[j].cols();
          T* dv = dsrc[j].data() + t * D;
          attnres::simd::add(s.value[j].data() + t * D, dv, D);  // dv is in L1 after the first add
          for (idx p = 0; p < S; ++p) attnres::simd::add(dh[p].data() + t * D, dv, D);
        }
    });
    benchmark::DoNotOptimize(dsrc[0].data());
    benchmark::ClobberMemory();
  }
  report<attnres::backend::cpu>(state, backward_bytes(n, S));
}

template <class Backend>
void register_backend() {
  const std::string b = Backend::name;
  auto setup = [](benchmark::internal::Benchmark* bm) { bm->Unit(benchmark::kMicrosecond)->UseRealTime(); };
  setup(benchmark::RegisterBenchmark(("key_norm_stats/" + b).c_str(), bm_key_norm_stats<Backend>));
  for (const std::int64_t n : kSources)
    setup(benchmark::RegisterBenchmark(("forward/" + b).c_str(), bm_forward<Backend>)->ArgNames({"n"})->Arg(n));
  for (const std::int64_t n : kSources)
    for (const std::int64_t S : kQueries)
      setup(benchmark::RegisterBenchmark(("stats/" + b).c_str(), bm_stats<Backend>)->ArgNames({"n", "S"})->Args({n, S}));
  for (const std::int64_t n : kSources)
    setup(benchmark::RegisterBenchmark(("merge/" + b).c_str(), bm_merge<Backend>)->ArgNames({"n"})->Arg(n));
  for (const std::int64_t n : kSources)
    for (const std::int64_t S : kQueries)
      setup(benchmark::RegisterBenchmark(("backward/" + b).c_str(), bm_backward<Backend>)
                ->ArgNames({"n", "S"})
                ->Args({n, S}));
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("shape", "M = 2048 tokens (batch 8 x seq 256), D = 256, float");
  benchmark::AddCustomContext("omp_max_threads", std::to_string(attnres::max_threads()));
  register_backend<attnres::backend::reference>();
  register_backend<attnres::backend::cpu>();
  auto isa_ratio = [](const char* name, auto fn, std::int64_t n, std::int64_t S) {
    benchmark::RegisterBenchmark(name, fn)->ArgNames({"n", "S"})->Args({n, S})->Unit(benchmark::kMicrosecond)->UseRealTime()->MinTime(2);
  };
  for (const std::int64_t n : kSources) {
    for (const std::int64_t S : kQueries) isa_ratio("isa_ratio/stats", bm_isa_ratio<stats_case>, n, S);
    isa_ratio("isa_ratio/merge", bm_isa_ratio<merge_case>, n, 1);
    for (const std::int64_t S : kQueries) isa_ratio("isa_ratio/backward", bm_isa_ratio<backward_case>, n, S);
  }
  for (const std::int64_t n : {1, 3, 5, 9}) isa_ratio("isa_ratio/decode_forward", bm_isa_ratio<decode_case>, n, 1);
  for (const std::int64_t n : kSources)
    for (const std::int64_t S : kQueries)
      benchmark::RegisterBenchmark("backward_streams", bm_backward_streams)
          ->ArgNames({"n", "S"})
          ->Args({n, S})
          ->Unit(benchmark::kMicrosecond)
          ->UseRealTime();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
