// Whole-model steps per residual policy (Sum, FullAttnRes, BlockAttnRes<2>, <4>, <8>) on the cpu
// backend at DESIGN.md's default size: 8 layers (L = 16), D = 256, H = 4, SwiGLU F = 704,
// V = 256, batch 8 × sequence 256.
//
//   train_step/<policy>   zero_grad, forward + backward, global-norm clip, AdamW step
//   prefill/<policy>      batch 8 × 256 prompt tokens through the model, filling a KV cache
//   decode_step/<policy>  batch 1, one token through the KV cache at positions 64 .. 191
//   decode_step_forked/sum  the same for Sum with an OpenMP fork and join per parallel loop
//                         instead of LM's spinning team (compare the two in one run:
//                         --benchmark_filter='decode_step.*/sum' --benchmark_enable_random_interleaving=true)
//
// items_per_second is tokens per second; GFLOP/s uses model/cost.hpp. A policy's overhead is its
// time over Sum's from the same run (bench/README.md shows the medians; bench/compare_torch.py
// puts PyTorch beside them).
//
//   build/release/bench/bench_model --benchmark_repetitions=3 --benchmark_report_aggregates_only=true

#include <attnres/attnres.hpp>

#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <vector>

namespace {

using namespace attnres;

constexpr index_t kBatch = 8, kSeq = 256, kPrompt = 64, kNew = 128;

model_config default_config() { return {.vocab = 256, .d_model = 256, .n_heads = 4, .n_layers = 8, .d_ff = 704}; }

std::vector<std::int32_t> random_tokens(index_t n, std::uint64_t seed) {
  rng g(seed);
  std::vector<std::int32_t> out(static_cast<std::size_t>(n));
  for (auto& x : out) x = static_cast<std::int32_t>(g.below(256));
  return out;
}

template <class Model>
void train_step(benchmark::State& s) {
  Model model(default_config());
  model.init_weights(1);
  const auto tokens = random_tokens(kBatch * kSeq, 1), targets = random_tokens(kBatch * kSeq, 2);
  auto params = model.parameters();
  train::adamw<float> opt({.lr = 1e-4}, params);
  auto step = [&] {
    model.zero_grad();
    benchmark::DoNotOptimize(model.forward_backward(tokens, targets, kBatch, kSeq));
    train::clip_grad_norm(params, 1.0);
    opt.step(params);
  };
  step();  // first touch of every buffer outside the timing
  for (auto _ : s) step();
  s.SetItemsProcessed(static_cast<std::int64_t>(s.iterations()) * kBatch * kSeq);
  s.counters["GFLOP/s"] = benchmark::Counter(
      training_flops_per_token(model.config(), model.arch(), kSeq) * kBatch * kSeq * static_cast<double>(s.iterations()) / 1e9,
      benchmark::Counter::kIsRate);
}

template <class Model>
void prefill(benchmark::State& s) {
  Model model(default_config());
  model.init_weights(1);
  const auto tokens = random_tokens(kBatch * kSeq, 1);
  auto state = model.start_decode(kBatch, kSeq);
  model.prefill(state, tokens, kSeq);
  for (auto _ : s) {
    state.pos = 0;  // overwrite the same cache
    benchmark::DoNotOptimize(model.prefill(state, tokens, kSeq).data);
  }
  s.SetItemsProcessed(static_cast<std::int64_t>(s.iterations()) * kBatch * kSeq);
  s.counters["GFLOP/s"] = benchmark::Counter(
      forward_flops_per_token(model.config(), model.arch(), kSeq) * kBatch * kSeq * static_cast<double>(s.iterations()) / 1e9,
      benchmark::Counter::kIsRate);
}

template <class Model, bool OnTeam = true>
void decode_step(benchmark::State& s) {
  const bool saved = detail::decode_on_spinning_team;
  detail::decode_on_spinning_team = OnTeam;
  Model model(default_config());
  model.init_weights(1);
  const auto prompt = random_tokens(kPrompt, 3);
  auto state = model.start_decode(1, kPrompt + kNew);
  model.prefill(state, prompt, kPrompt);
  std::int32_t next = 0;
  for (auto _ : s) {
    if (state.pos == kPrompt + kNew) {  // a full cache: start the generation again (untimed)
      s.PauseTiming();
      state.pos = kPrompt;
      s.ResumeTiming();
    }
    const auto logits = model.decode_step(state, std::span<const std::int32_t>(&next, 1));
    next = static_cast<std::int32_t>(logits.data[0] > logits.data[1]);  // keeps the result alive
  }
  s.SetItemsProcessed(static_cast<std::int64_t>(s.iterations()));
  detail::decode_on_spinning_team = saved;
}

template <class Residual>
void register_policy(const std::string& label) {
  using Model = LM<Residual, RMSNorm, SwiGLU, backend::cpu, float>;
  benchmark::RegisterBenchmark(("train_step/" + label).c_str(), train_step<Model>)->Unit(benchmark::kMillisecond)->UseRealTime();
  benchmark::RegisterBenchmark(("prefill/" + label).c_str(), prefill<Model>)->Unit(benchmark::kMillisecond)->UseRealTime();
  benchmark::RegisterBenchmark(("decode_step/" + label).c_str(), decode_step<Model>)
      ->Unit(benchmark::kMicrosecond)
      ->UseRealTime();
}

}  // namespace

int main(int argc, char** argv) {
  reexec_with_avx512_openblas(argv);  // core/blas.hpp
  register_policy<Sum>("sum");
  register_policy<BlockAttnRes<2>>("block2");
  register_policy<BlockAttnRes<4>>("block4");
  register_policy<BlockAttnRes<8>>("block8");
  register_policy<FullAttnRes>("full");
  // Sum's decode step with an OpenMP fork and join per loop instead of the spinning team
  benchmark::RegisterBenchmark("decode_step_forked/sum", decode_step<LM<Sum, RMSNorm, SwiGLU, backend::cpu, float>, false>)
      ->Unit(benchmark::kMicrosecond)
      ->UseRealTime();
  benchmark::AddCustomContext("blas", blas_description());
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
