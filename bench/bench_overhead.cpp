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
// the quartiles of the same ratios, rounds = how many rounds were timed. policy_pct (and its
// quartiles): the time inside the policy's own calls, timed in every step (timed<P> below), the
// policy's minus Sum's over Sum's step; it does not see the two halves of a round drift apart. sum/… is the control:
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
#include <string_view>
#include <utility>
#include <vector>

namespace {

using namespace attnres;
using clock_type = std::chrono::steady_clock;

constexpr index_t kBatch = 8, kSeq = 256, kPrompt = 64, kNew = 128;

model_config default_config() { return {.vocab = 256, .d_model = 256, .n_heads = 4, .n_layers = 8, .d_ff = 704}; }

// timed<P>: policy P with a stopwatch around each of its calls, so a step's time inside the
// policy is measured in the same step as the rest (policy_seconds; the model calls its policy
// from one thread). Two clock reads per call, ≈ 35 calls per training step: microseconds in
// a step of hundreds of milliseconds.
template <class P>
struct timed {
  static constexpr std::string_view name = P::name;
  static inline double policy_seconds = 0;
  template <class T = float, class Backend = default_backend>
  class with : public P::template with<T, Backend> {
    using base = typename P::template with<T, Backend>;
    template <class Call>
    static void time(Call&& call) {
      const auto t0 = clock_type::now();
      call();
      policy_seconds += std::chrono::duration<double>(clock_type::now() - t0).count();
    }

   public:
    using base::base;
    template <class... A>
    void begin(A&&... a) const { time([&] { base::begin(std::forward<A>(a)...); }); }
    template <class... A>
    void gather(A&&... a) const { time([&] { base::gather(std::forward<A>(a)...); }); }
    template <class... A>
    void push(A&&... a) const { time([&] { base::push(std::forward<A>(a)...); }); }
    template <class... A>
    void begin_backward(A&&... a) const { time([&] { base::begin_backward(std::forward<A>(a)...); }); }
    template <class... A>
    void gather_backward(A&&... a) const { time([&] { base::gather_backward(std::forward<A>(a)...); }); }
    template <class... A>
    void source_grad(A&&... a) const { time([&] { base::source_grad(std::forward<A>(a)...); }); }
  };
};

template <class Residual>
using model_of = LM<timed<Residual>, RMSNorm, SwiGLU, backend::cpu, float>;

std::vector<std::int32_t> random_tokens(index_t n, std::uint64_t seed) {
  rng g(seed);
  std::vector<std::int32_t> out(static_cast<std::size_t>(n));
  for (auto& x : out) x = static_cast<std::int32_t>(g.below(256));
  return out;
}

// One round per benchmark iteration: `warm` untimed then k timed steps of each side, the side
// that goes first alternating between rounds. step_sum / step_policy return their own seconds.
// A step's seconds, and of those the seconds inside the residual policy's calls.
struct step_time {
  double total = 0, policy = 0;
};

double median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
  return v[v.size() / 2];
}

template <class StepSum, class StepPolicy>
void interleave(benchmark::State& s, StepSum&& step_sum, StepPolicy&& step_policy, int warm, int k) {
  auto run = [&](auto& step) {  // medians of the k steps: (step, policy part)
    for (int i = 0; i < warm; ++i) step();
    std::vector<double> total, policy;
    for (int i = 0; i < k; ++i) {
      const step_time t = step();
      total.push_back(t.total);
      policy.push_back(t.policy);
    }
    return step_time{median(total), median(policy)};
  };
  std::vector<double> ratio, attributable;
  bool sum_first = true;
  for (auto _ : s) {
    step_time t_sum, t_policy;
    if (sum_first) {
      t_sum = run(step_sum);
      t_policy = run(step_policy);
    } else {
      t_policy = run(step_policy);
      t_sum = run(step_sum);
    }
    sum_first = !sum_first;
    ratio.push_back(t_policy.total / t_sum.total);
    attributable.push_back((t_policy.policy - t_sum.policy) / t_sum.total);
    s.SetIterationTime(t_policy.total);
  }
  if (ratio.empty()) return;
  auto quantile = [](std::vector<double> v, double q) {
    std::sort(v.begin(), v.end());
    return v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5)];
  };
  s.counters["overhead_pct"] = 100 * (quantile(ratio, 0.5) - 1);
  s.counters["q25_pct"] = 100 * (quantile(ratio, 0.25) - 1);
  s.counters["q75_pct"] = 100 * (quantile(ratio, 0.75) - 1);
  // The difference of the two policies' own times (each measured inside its steps) over Sum's
  // step: the cost the policy adds by its own calls, without the drift between the two halves
  // of a round. It leaves out any slowdown the policy causes in the sublayers (e.g. through the
  // cache), which overhead_pct includes.
  s.counters["policy_pct"] = 100 * quantile(attributable, 0.5);
  s.counters["policy_q25_pct"] = 100 * quantile(attributable, 0.25);
  s.counters["policy_q75_pct"] = 100 * quantile(attributable, 0.75);
  s.counters["rounds"] = static_cast<double>(ratio.size());
}

template <class Residual, class Fn>
step_time seconds(Fn&& fn) {
  timed<Residual>::policy_seconds = 0;
  const auto t0 = clock_type::now();
  fn();
  return {std::chrono::duration<double>(clock_type::now() - t0).count(), timed<Residual>::policy_seconds};
}

// One model with its optimiser and a fixed batch; step() trains once and returns its seconds.
template <class Residual>
struct trainer {
  model_of<Residual> model{default_config()};
  std::vector<std::int32_t> tokens = random_tokens(kBatch * kSeq, 1), targets = random_tokens(kBatch * kSeq, 2);
  decltype(model.parameters()) params;
  train::adamw<float> opt;
  trainer() : params((model.init_weights(1), model.parameters())), opt({.lr = 1e-4}, params) {}
  step_time step() {
    return seconds<Residual>([&] {
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
  step_time step() {
    if (state.pos == kPrompt + kNew) state.pos = kPrompt;  // a full cache: generate again (untimed)
    const auto next = feed[static_cast<std::size_t>(state.pos - kPrompt)];
    return seconds<Residual>([&] {
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
