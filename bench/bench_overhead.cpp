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
//   decode16/<policy> the same with bf16 decode weights on both sides (LM::start_decode)
//   baseline-train/<policy>, baseline-decode/<policy>
//                     the same at the PyTorch baseline's size of issue 5 (GELU MLP of 1024, tied
//                     embeddings; compare_torch.py --size torch-baseline)
//   groups/block8     training steps of Block<8> with one batched backward pass per block
//                     against its default pairs of blocks (residual/block_attn_res.hpp): here
//                     the first side is the one-pass Block<8>, not Sum, so policy_pct < 0 is what
//                     the pairs save
//   bf16/decode/<policy>
//                     decode steps with the model's float weights against decode steps with bf16
//                     copies of its weight matrices (LM::start_decode, decode_weights::bf16), two
//                     models of one policy: overhead_pct < 0 is what bf16 weights save
//   prefetch/decode/<policy>
//                     decode steps of one model without and with the matrix-vector path's
//                     requests for the weight rows ahead (ops/cpu/linear.hpp,
//                     gemv_prefetch_groups 0 against 2, or against $ATTNRES_GEMV_PREFETCH_GROUPS
//                     when set): overhead_pct < 0 is what the
//                     requests save; step_us_without is the median step without them, how busy
//                     the machine was
//
// Counters: overhead_pct = 100·(median over rounds of t_policy / t_sum − 1), q25_pct and q75_pct
// the quartiles of the same ratios, rounds = how many rounds were timed. policy_pct (and its
// quartiles): the time inside the policy's own calls, timed in every step (timed<P> below), the
// policy's minus Sum's over Sum's step; it does not see the two halves of a round drift apart.
// *_ms: the policy's time per step by kind of call (call_kind below). sum/… is the control:
// Sum against Sum, which must come out near 0 %. The reported time is the policy's step. Both
// models have the same weights (init_weights with the same seed draws the layers identically;
// only the policy's own parameters differ).
//
//   OMP_NUM_THREADS=2 build/release/bench/bench_overhead --benchmark_filter=train
//   OMP_NUM_THREADS=1 build/release/bench/bench_overhead --benchmark_filter=decode
//   OMP_NUM_THREADS=2 build/release/bench/bench_overhead --benchmark_filter=groups
//   OMP_NUM_THREADS=2 build/release/bench/bench_overhead --benchmark_filter='^baseline-decode/'
//   OMP_NUM_THREADS=2 build/release/bench/bench_overhead --benchmark_filter='^prefetch/'
//   OMP_NUM_THREADS=2 build/release/bench/bench_overhead --benchmark_filter='^bf16/'

#include <attnres/attnres.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using namespace attnres;
using clock_type = std::chrono::steady_clock;

constexpr index_t kBatch = 8, kSeq = 256, kPrompt = 64, kNew = 128;

// The two sizes issue 5 sets its targets at: DESIGN.md's default model and the PyTorch
// baseline's (bench/compare_torch.py --size torch-baseline: GELU MLP of 1024, tied embeddings).
struct default_size {
  using mlp = SwiGLU;
  static constexpr std::string_view prefix = "";
  static model_config config() { return {.vocab = 256, .d_model = 256, .n_heads = 4, .n_layers = 8, .d_ff = 704}; }
};
struct baseline_size {
  using mlp = GELU;
  static constexpr std::string_view prefix = "baseline-";
  static model_config config() {
    return {.vocab = 256, .d_model = 256, .n_heads = 4, .n_layers = 8, .d_ff = 1024, .tie_embeddings = true};
  }
};

// The kinds of policy call a step's policy time is split into (the *_ms counters). A block
// start is the first sublayer of a BlockAttnRes block: its gather runs Phase 1 for the whole
// block, its gather_backward the block's batched Phase-1 backward. Other policies have none.
enum call_kind : int { gather_start, gather_rest, gather_out, backward_start, backward_rest, backward_out, push_call,
                       source_grad_call, begin_calls, n_call_kinds };
constexpr std::array<const char*, n_call_kinds> call_kind_names = {
    "gather_start_ms", "gather_ms", "gather_out_ms", "backward_start_ms", "backward_ms", "backward_out_ms",
    "push_ms", "source_grad_ms", "begin_ms"};
using call_seconds = std::array<double, n_call_kinds>;

// timed<P>: policy P with a stopwatch around each of its calls, so a step's time inside the
// policy is measured in the same step as the rest (policy_seconds, and per kind of call in
// seconds_by_kind; the model calls its policy from one thread). Two clock reads per call, ≈ 35
// calls per training step: microseconds in a step of hundreds of milliseconds.
template <class P>
struct timed {
  static constexpr std::string_view name = P::name;
  static inline double policy_seconds = 0;
  static inline call_seconds seconds_by_kind{};
  template <class T = float, class Backend = default_backend>
  class with : public P::template with<T, Backend> {
    using base = typename P::template with<T, Backend>;
    template <class Call>
    static void time(call_kind kind, Call&& call) {
      const auto t0 = clock_type::now();
      call();
      const double s = std::chrono::duration<double>(clock_type::now() - t0).count();
      policy_seconds += s;
      seconds_by_kind[kind] += s;
    }
    // gather point l: the output, a block start, or any other
    call_kind kind_of(int l, call_kind start, call_kind rest, call_kind out) const {
      if (l == base::n_sublayers() + 1) return out;
      if constexpr (requires { base::block_size(); })
        if ((l - 1) % base::block_size() == 0) return start;
      return rest;
    }

   public:
    using base::base;
    template <class... A>
    void begin(A&&... a) const { time(begin_calls, [&] { base::begin(std::forward<A>(a)...); }); }
    template <class Pp, class C, class H>
    void gather(const Pp& p, C& c, int l, H h) const {
      time(kind_of(l, gather_start, gather_rest, gather_out), [&] { base::gather(p, c, l, h); });
    }
    template <class... A>
    void push(A&&... a) const { time(push_call, [&] { base::push(std::forward<A>(a)...); }); }
    template <class... A>
    void begin_backward(A&&... a) const { time(begin_calls, [&] { base::begin_backward(std::forward<A>(a)...); }); }
    // with or without the caller's c = dh·h (the optional form, where the policy has it)
    template <class Pp, class C, class Dh, class G, class... Dots>
      requires requires(const base& b, const Pp& p, C& c, int l, Dh dh, G& g, Dots... dots) {
        b.gather_backward(p, c, l, dh, g, dots...);
      }
    void gather_backward(const Pp& p, C& c, int l, Dh dh, G& g, Dots... dots) const {
      time(kind_of(l, backward_start, backward_rest, backward_out), [&] { base::gather_backward(p, c, l, dh, g, dots...); });
    }
    template <class... A>
    void source_grad(A&&... a) const { time(source_grad_call, [&] { base::source_grad(std::forward<A>(a)...); }); }
  };
};

template <class Residual, class Size>
using model_of = LM<timed<Residual>, RMSNorm, typename Size::mlp, backend::cpu, float>;

std::vector<std::int32_t> random_tokens(index_t n, std::uint64_t seed) {
  rng g(seed);
  std::vector<std::int32_t> out(static_cast<std::size_t>(n));
  for (auto& x : out) x = static_cast<std::int32_t>(g.below(256));
  return out;
}

// One round per benchmark iteration: `warm` untimed then k timed steps of each side, the side
// that goes first alternating between rounds. step_sum / step_policy return their own seconds.
// A step's seconds, and of those the seconds inside the residual policy's calls (by kind).
struct step_time {
  double total = 0, policy = 0;
  call_seconds by_kind{};
};

double median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
  return v[v.size() / 2];
}

template <class StepSum, class StepPolicy>
void interleave(benchmark::State& s, StepSum&& step_sum, StepPolicy&& step_policy, int warm, int k) {
  auto run = [&](auto& step) {  // medians of the k steps: step, policy part, each kind of call
    for (int i = 0; i < warm; ++i) step();
    std::vector<double> total, policy;
    std::array<std::vector<double>, n_call_kinds> kinds;
    for (int i = 0; i < k; ++i) {
      const step_time t = step();
      total.push_back(t.total);
      policy.push_back(t.policy);
      for (int c = 0; c < n_call_kinds; ++c) kinds[c].push_back(t.by_kind[c]);
    }
    step_time m{median(total), median(policy)};
    for (int c = 0; c < n_call_kinds; ++c) m.by_kind[c] = median(kinds[c]);
    return m;
  };
  std::vector<double> ratio, attributable;
  std::array<std::vector<double>, n_call_kinds> policy_kinds;  // the policy side's, per round
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
    for (int c = 0; c < n_call_kinds; ++c) policy_kinds[c].push_back(t_policy.by_kind[c]);
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
  // Where the policy's time goes: per kind of call, ms per step (median over rounds). The
  // sum/… row gives Sum's.
  for (int c = 0; c < n_call_kinds; ++c)
    if (const double ms = 1e3 * quantile(policy_kinds[c], 0.5); ms > 0) s.counters[call_kind_names[c]] = ms;
}

template <class Residual, class Fn>
step_time seconds(Fn&& fn) {
  timed<Residual>::policy_seconds = 0;
  timed<Residual>::seconds_by_kind = {};
  const auto t0 = clock_type::now();
  fn();
  return {std::chrono::duration<double>(clock_type::now() - t0).count(), timed<Residual>::policy_seconds,
          timed<Residual>::seconds_by_kind};
}

// The two sides of a round, for a model of one Size.
template <class Size>
struct sized {
  template <class Residual>
  struct trainer;
  template <class Residual>
  struct decoder;
  template <class Residual>
  struct decoder16;  // decoding with bf16 weights
};

// One model with its optimiser and a fixed batch; step() trains once and returns its seconds.
template <class Size>
template <class Residual>
struct sized<Size>::trainer {
  model_of<Residual, Size> model{Size::config()};
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
template <class Size>
template <class Residual>
struct sized<Size>::decoder {
  model_of<Residual, Size> model{Size::config()};
  decltype(model.start_decode(1, 1)) state;
  std::vector<std::int32_t> prompt = random_tokens(kPrompt, 3), feed = random_tokens(kNew, 4);
  explicit decoder(decode_weights w = decode_weights::f32)
      : state((model.init_weights(1), model.start_decode(1, kPrompt + kNew, w))) {
    model.prefill(state, prompt, kPrompt);
  }
  step_time step() {
    if (state.pos == kPrompt + kNew) state.pos = kPrompt;  // a full cache: generate again (untimed)
    const auto next = feed[static_cast<std::size_t>(state.pos - kPrompt)];
    return seconds<Residual>([&] {
      const auto logits = model.decode_step(state, std::span<const std::int32_t>(&next, 1));
      benchmark::DoNotOptimize(logits.data[0]);
    });
  }
};

template <class Size>
template <class Residual>
struct sized<Size>::decoder16 : decoder<Residual> {
  decoder16() : decoder<Residual>(decode_weights::bf16) {}
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

// Block<8> made with one backward pass per block against Block<8> made with the default
// grouping (pairs for N ≥ 2S); the policy reads detail::block_backward_group when it is made.
void backward_groups(benchmark::State& s) {
  const int saved = detail::block_backward_group;
  detail::block_backward_group = 1;
  sized<default_size>::trainer<BlockAttnRes<8>> one_pass;
  detail::block_backward_group = 0;
  sized<default_size>::trainer<BlockAttnRes<8>> pairs;
  detail::block_backward_group = saved;
  auto sa = [&] { return one_pass.step(); };
  auto sb = [&] { return pairs.step(); };
  interleave(s, sa, sb, 1, 3);
}

// Decode steps with float weights against decode steps with bf16 weights, one policy.
template <class Residual>
void bf16_weights(benchmark::State& s) {
  sized<default_size>::decoder<Residual> with_float(decode_weights::f32), with_bf16(decode_weights::bf16);
  auto sa = [&] { return with_float.step(); };
  auto sb = [&] { return with_bf16.step(); };
  interleave(s, sa, sb, 8, 64);
}

// One decoding model, its steps without the matrix-vector path's row requests against with them.
template <class Residual>
void gemv_prefetch(benchmark::State& s) {
  namespace ld = ops::linear_detail;
  const index_t saved = ld::gemv_prefetch_groups;
  const char* env = std::getenv("ATTNRES_GEMV_PREFETCH_GROUPS");
  const index_t groups = env ? std::atoi(env) : 2;
  sized<default_size>::decoder<Residual> model;
  std::vector<double> without;
  auto sa = [&] {
    ld::gemv_prefetch_groups = 0;
    const step_time t = model.step();
    without.push_back(t.total);
    return t;
  };
  auto sb = [&] {
    ld::gemv_prefetch_groups = groups;
    const step_time t = model.step();
    ld::gemv_prefetch_groups = saved;
    return t;
  };
  interleave(s, sa, sb, 8, 64);
  ld::gemv_prefetch_groups = saved;
  if (!without.empty()) s.counters["step_us_without"] = 1e6 * median(without);
}

template <class Residual, class Size>
void register_policy(const std::string& label) {
  const std::string prefix(Size::prefix);
  using S = sized<Size>;
  benchmark::RegisterBenchmark((prefix + "train/" + label).c_str(), overhead<S::template trainer, 1, 3, Residual>)
      ->Unit(benchmark::kMillisecond)
      ->UseManualTime()
      ->MinTime(8);  // the policy's timed median step per round: ≈ 0.65 s, so ≈ 12 rounds (≈ 1 min)
  benchmark::RegisterBenchmark((prefix + "decode/" + label).c_str(), overhead<S::template decoder, 8, 64, Residual>)
      ->Unit(benchmark::kMicrosecond)
      ->UseManualTime()
      ->MinTime(0.1);  // ≈ 1.2 ms per round counted, so ≈ 80 rounds (≈ 15 s)
  if (prefix.empty())
    benchmark::RegisterBenchmark(("decode16/" + label).c_str(), overhead<S::template decoder16, 8, 64, Residual>)
        ->Unit(benchmark::kMicrosecond)
        ->UseManualTime()
        ->MinTime(0.1);
}

template <class Size>
void register_policies() {
  register_policy<Sum, Size>("sum");  // the control: Sum against Sum must measure ≈ 0 %
  register_policy<BlockAttnRes<4>, Size>("block4");
  register_policy<BlockAttnRes<8>, Size>("block8");
  register_policy<FullAttnRes, Size>("full");
}

}  // namespace

int main(int argc, char** argv) {
  reexec_with_avx512_openblas(argv);  // core/blas.hpp
  register_policies<default_size>();
  register_policies<baseline_size>();
  benchmark::RegisterBenchmark("groups/block8", backward_groups)->Unit(benchmark::kMillisecond)->UseManualTime()->MinTime(8);
  benchmark::RegisterBenchmark("bf16/decode/sum", bf16_weights<Sum>)->Unit(benchmark::kMicrosecond)->UseManualTime()->MinTime(0.1);
  benchmark::RegisterBenchmark("bf16/decode/block4", bf16_weights<BlockAttnRes<4>>)
      ->Unit(benchmark::kMicrosecond)
      ->UseManualTime()
      ->MinTime(0.1);
  benchmark::RegisterBenchmark("prefetch/decode/sum", gemv_prefetch<Sum>)->Unit(benchmark::kMicrosecond)->UseManualTime()->MinTime(0.1);
  benchmark::RegisterBenchmark("prefetch/decode/block8", gemv_prefetch<BlockAttnRes<8>>)
      ->Unit(benchmark::kMicrosecond)
      ->UseManualTime()
      ->MinTime(0.1);
  benchmark::AddCustomContext("blas", blas_description());
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
