// A residual policy's cost over Sum in whole-model steps, measured the way this noisy shared
// machine allows: both models live in one process and take turns in rounds — k steps of Sum,
// then k of the policy, then the policy first, … — and the overhead is the median over rounds of
// the ratio of their median step times. A slow moment of the machine slows both halves of a
// round alike and cancels in the ratio; separate runs drift by ±5–20 % and cannot resolve 1 %.
// Each side runs its k steps back to back after `warm` untimed ones, as a real training or
// generation loop does: alternating single steps would start every step with the other model's
// weights and activations in the cache (measured: Block<8> training +6.8 % that way against
// +2–3 % in runs of consecutive steps; a 26 MB decode model nearly fills the L3 cache).
//
//   train/<policy>    training steps: zero_grad, forward + backward, clip, AdamW
//                     (DESIGN.md's default model, batch 8 × 256); k = 3, 1 warm-up step
//   decode/<policy>   KV-cache decode steps, batch 1, positions 64 .. 191; k = 64, 8 warm-up
//
// Counters: overhead_pct = 100·(median over rounds of t_policy / t_sum − 1), q25_pct and q75_pct
// the quartiles of the same ratios, rounds = how many rounds were timed. sum/… is the control:
// Sum against Sum, which must come out near 0 %. The reported time is the policy's step. Both
// models have the same weights (init_weights with the same seed draws the layers identically;
// only the policy's own parameters differ).
//
//   OMP_NUM_THREADS=2 build/release/bench/bench_overhead --benchmark_filter=train
//   OMP_NUM_THREADS=1 build/release/bench/bench_overhead --benchmark_filter=decode

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

// One round per benchmark iteration: `warm` untimed then k timed steps of each side, the side
// that goes first alternating between rounds. step_sum / step_policy return their own seconds.
template <class StepSum, class StepPolicy>
void interleave(benchmark::State& s, StepSum&& step_sum, StepPolicy&& step_policy, int warm, int k) {
  auto run = [&](auto& step) {
    for (int i = 0; i < warm; ++i) step();
    std::vector<double> t;
    for (int i = 0; i < k; ++i) t.push_back(step());
    std::nth_element(t.begin(), t.begin() + k / 2, t.end());
    return t[static_cast<std::size_t>(k / 2)];
  };
  std::vector<double> ratio;
  bool sum_first = true;
  for (auto _ : s) {
    double t_sum = 0, t_policy = 0;
    if (sum_first) {
      t_sum = run(step_sum);
      t_policy = run(step_policy);
    } else {
      t_policy = run(step_policy);
      t_sum = run(step_sum);
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
  s.counters["rounds"] = static_cast<double>(ratio.size());
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

// Side<Sum> against Side<Residual>: `warm` untimed and k timed steps each per round.
template <template <class> class Side, int Warm, int K, class Residual>
void overhead(benchmark::State& s) {
  Side<Sum> a;
  Side<Residual> b;
  auto sa = [&] { return a.step(); };
  auto sb = [&] { return b.step(); };
  interleave(s, sa, sb, Warm, K);
}

template <class Residual>
void register_policy(const std::string& label) {
  benchmark::RegisterBenchmark(("train/" + label).c_str(), overhead<trainer, 1, 3, Residual>)
      ->Unit(benchmark::kMillisecond)
      ->UseManualTime()
      ->MinTime(8);  // the policy's timed median step per round: ≈ 0.65 s, so ≈ 12 rounds (≈ 1 min)
  benchmark::RegisterBenchmark(("decode/" + label).c_str(), overhead<decoder, 8, 64, Residual>)
      ->Unit(benchmark::kMicrosecond)
      ->UseManualTime()
      ->MinTime(0.1);  // ≈ 1.2 ms per round counted, so ≈ 80 rounds (≈ 15 s)
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
