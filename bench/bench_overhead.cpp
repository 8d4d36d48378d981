// A residual policy's cost over Sum in whole-model steps, measured the way this noisy shared
// machine allows: both models live in one process and their steps are interleaved — Sum, policy,
// policy, Sum, … (the order flips every pair, so neither always runs first) — and the overhead is
// the median of the per-pair time ratios. A slow moment of the machine slows both steps of a pair
// alike and cancels in their ratio; separate runs drift by ±5–20 % and cannot resolve 1 %.
//
//   train/<policy>    one training step each: zero_grad, forward + backward, clip, AdamW
//                     (DESIGN.md's default model, batch 8 × 256)
//   decode/<policy>   one KV-cache decode step each, batch 1, positions 64 .. 191
//
// Counters: overhead_pct = 100·(median of t_policy / t_sum − 1), q25_pct and q75_pct the quartiles
// of the same ratios (their spread), pairs = how many pairs were timed. The reported time is the
// policy's step. Both models have the same weights (init_weights with the same seed draws the
// layers identically; only the policy's own parameters differ).
//
//   OMP_NUM_THREADS=1 build/release/bench/bench_overhead --benchmark_filter=decode
//   OMP_NUM_THREADS=2 build/release/bench/bench_overhead --benchmark_filter=train

#include <attnres/attnres.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace {

using namespace attnres;
using clock_type = std::chrono::steady_clock;

constexpr index_t kBatch = 8, kSeq = 256, kPrompt = 64, kNew = 128;

model_config default_config() { return {.vocab = 256, .d_model = 256, .n_heads = 4, .n_layers = 8, .d_ff = 704}; }

template <class Residual>
using model_of = LM<Residual, RMSNorm, SwiGLU, backend::cpu, float>;

std::vector<std::int32_t> random_tokens(index_t n, std::uint64_t seed) {
  rng g(seed);
  std::vector<std::int32_t> out(static_cast<std::size_t>(n));
  for (auto& x : out) x = static_cast<std::int32_t>(g.below(256));
  return out;
}

// Runs one step of each side per benchmark iteration, in alternating order, and reports the
// median ratio. step_sum / step_policy are callables returning their own elapsed seconds.
template <class StepSum, class StepPolicy>
void interleave(benchmark::State& s, StepSum&& step_sum, StepPolicy&& step_policy, int warmup_pairs) {
  for (int i = 0; i < warmup_pairs; ++i) step_sum(), step_policy();
  std::vector<double> ratio;
  bool sum_first = true;
  for (auto _ : s) {
    double t_sum = 0, t_policy = 0;
    if (sum_first) {
      t_sum = step_sum();
      t_policy = step_policy();
    } else {
      t_policy = step_policy();
      t_sum = step_sum();
    }
    sum_first = !sum_first;
    ratio.push_back(t_policy / t_sum);
    s.SetIterationTime(t_policy);
  }
  if (ratio.empty()) return;
  std::sort(ratio.begin(), ratio.end());
  auto quantile = [&](double q) { return ratio[static_cast<std::size_t>(q * static_cast<double>(ratio.size() - 1) + 0.5)]; };
  s.counters["overhead_pct"] = 100 * (quantile(0.5) - 1);
  s.counters["q25_pct"] = 100 * (quantile(0.25) - 1);
  s.counters["q75_pct"] = 100 * (quantile(0.75) - 1);
  s.counters["pairs"] = static_cast<double>(ratio.size());
}

template <class Fn>
double seconds(Fn&& fn) {
  const auto t0 = clock_type::now();
  fn();
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// One model with its optimiser and a fixed batch; step() trains once and returns its seconds.
template <class Residual>
struct trainer {
  model_of<Residual> model{default_config()};
  std::vector<std::int32_t> tokens = random_tokens(kBatch * kSeq, 1), targets = random_tokens(kBatch * kSeq, 2);
  decltype(model.parameters()) params;
  train::adamw<float> opt;
  trainer() : params((model.init_weights(1), model.parameters())), opt({.lr = 1e-4}, params) {}
  double step() {
    return seconds([&] {
      model.zero_grad();
      benchmark::DoNotOptimize(model.forward_backward(tokens, targets, kBatch, kSeq));
      train::clip_grad_norm(params, 1.0);
      opt.step(params);
    });
  }
};

// One model generating from a fixed prompt; step() decodes one token and returns its seconds.
// The token fed is a fixed sequence, the same for both models (the work does not depend on it).
template <class Residual>
struct decoder {
  model_of<Residual> model{default_config()};
  decltype(model.start_decode(1, 1)) state;
  std::vector<std::int32_t> prompt = random_tokens(kPrompt, 3), feed = random_tokens(kNew, 4);
  decoder() : state((model.init_weights(1), model.start_decode(1, kPrompt + kNew))) { model.prefill(state, prompt, kPrompt); }
  double step() {
    if (state.pos == kPrompt + kNew) state.pos = kPrompt;  // a full cache: generate again (untimed)
    const auto next = feed[static_cast<std::size_t>(state.pos - kPrompt)];
    return seconds([&] {
      const auto logits = model.decode_step(state, std::span<const std::int32_t>(&next, 1));
      benchmark::DoNotOptimize(logits.data[0]);
    });
  }
};

template <class Residual>
void train_overhead(benchmark::State& s) {
  trainer<Sum> a;
  trainer<Residual> b;
  interleave(s, [&] { return a.step(); }, [&] { return b.step(); }, 1);
}

template <class Residual>
void decode_overhead(benchmark::State& s) {
  decoder<Sum> a;
  decoder<Residual> b;
  interleave(s, [&] { return a.step(); }, [&] { return b.step(); }, 32);
}

template <class Residual>
void register_policy(const std::string& label) {
  benchmark::RegisterBenchmark(("train/" + label).c_str(), train_overhead<Residual>)
      ->Unit(benchmark::kMillisecond)
      ->UseManualTime()
      ->MinTime(20);
  benchmark::RegisterBenchmark(("decode/" + label).c_str(), decode_overhead<Residual>)
      ->Unit(benchmark::kMicrosecond)
      ->UseManualTime()
      ->MinTime(5);
}

}  // namespace

int main(int argc, char** argv) {
  reexec_with_avx512_openblas(argv);  // core/blas.hpp
  register_policy<Sum>("sum");  // the control: Sum against Sum must measure ≈ 0 %
  register_policy<BlockAttnRes<4>>("block4");
  register_policy<BlockAttnRes<8>>("block8");
  register_policy<FullAttnRes>("full");
  benchmark::AddCustomContext("blas", blas_description());
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
