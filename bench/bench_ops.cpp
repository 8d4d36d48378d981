// Every op a training step runs, forward and backward, on the reference and the cpu backend, at
// DESIGN.md's default size: M = 2048 tokens (batch 8 × sequence 256), D = 256, H = 4 heads,
// F = 704 (SwiGLU hidden), V = 256. (The depth-attention op has its own suite,
// bench_depth_attention.) Names: <op>/<backend>. Counters: items_per_second = tokens per second;
// GFLOP/s for the products (linear, causal attention). The reference backend is the plain-loop
// oracle (single-threaded): its rows show what the fast path buys, not a target.
//
//   build/release/bench/bench_ops --benchmark_repetitions=3 --benchmark_report_aggregates_only=true

#include <attnres/attnres.hpp>

#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace {

using namespace attnres;
using T = float;

constexpr index_t kBatch = 8, kSeq = 256, kM = kBatch * kSeq, kD = 256, kH = 4, kF = 704, kV = 256;

tensor<T> random_tensor(std::vector<index_t> shape, std::uint64_t seed, double scale = 1.0) {
  tensor<T> t(std::move(shape));
  rng g(seed);
  for (auto& x : t) x = static_cast<T>(scale * g.normal());
  return t;
}

std::vector<std::int32_t> random_tokens(index_t n, index_t vocab, std::uint64_t seed) {
  rng g(seed);
  std::vector<std::int32_t> out(static_cast<std::size_t>(n));
  for (auto& x : out) x = static_cast<std::int32_t>(g.below(static_cast<std::uint64_t>(vocab)));
  return out;
}

void per_token(benchmark::State& s, double flops_per_iteration = 0) {
  s.SetItemsProcessed(static_cast<std::int64_t>(s.iterations()) * kM);
  if (flops_per_iteration > 0)
    s.counters["GFLOP/s"] = benchmark::Counter(flops_per_iteration * static_cast<double>(s.iterations()) / 1e9,
                                               benchmark::Counter::kIsRate);
}

// ---- linear: y = x Wᵀ and its backward (the MLP's up projection shape) ----
template <class B>
void linear_forward(benchmark::State& s) {
  auto x = random_tensor({kM, kD}, 1), W = random_tensor({kF, kD}, 2, 0.05), y = tensor<T>({kM, kF});
  for (auto _ : s) ops::linear_forward(B{}, x.mat(), W.mat(), y.mat());
  per_token(s, 2.0 * kM * kD * kF);
}
template <class B>
void linear_backward(benchmark::State& s) {
  auto x = random_tensor({kM, kD}, 1), W = random_tensor({kF, kD}, 2, 0.05), dy = random_tensor({kM, kF}, 3);
  tensor<T> dx({kM, kD}), dW({kF, kD});
  for (auto _ : s) ops::linear_backward(B{}, x.mat(), W.mat(), dy.mat(), dx.mat(), dW.mat());
  per_token(s, 4.0 * kM * kD * kF);
}
// decode: one row (batch 1) through the largest matrix of a layer
template <class B>
void linear_forward_1row(benchmark::State& s) {
  auto x = random_tensor({1, kD}, 1), W = random_tensor({kF, kD}, 2, 0.05), y = tensor<T>({1, kF});
  for (auto _ : s) ops::linear_forward(B{}, x.mat(), W.mat(), y.mat());
  s.counters["GFLOP/s"] = benchmark::Counter(2.0 * kD * kF * static_cast<double>(s.iterations()) / 1e9,
                                             benchmark::Counter::kIsRate);
  s.counters["GB/s"] = benchmark::Counter(4.0 * kD * kF * static_cast<double>(s.iterations()) / 1e9,
                                          benchmark::Counter::kIsRate);
}
// the same with the weights in bf16 (decoding with decode_weights::bf16): half the bytes
template <class B>
void linear_forward_1row_bf16(benchmark::State& s) {
  auto x = random_tensor({1, kD}, 1), W = random_tensor({kF, kD}, 2, 0.05);
  tensor<bf16> Wb({kF, kD});
  to_bf16(W.data(), Wb.data(), W.size());
  auto y = tensor<T>({1, kF});
  for (auto _ : s) ops::linear_forward(B{}, x.mat(), Wb.mat(), y.mat());
  s.counters["GFLOP/s"] = benchmark::Counter(2.0 * kD * kF * static_cast<double>(s.iterations()) / 1e9,
                                             benchmark::Counter::kIsRate);
  s.counters["GB/s"] = benchmark::Counter(2.0 * kD * kF * static_cast<double>(s.iterations()) / 1e9,
                                          benchmark::Counter::kIsRate);
}

// decode: the seven projections of each of 8 layers for one token (25.7 MB of weights, more than
// the caches hold, as in a decode step), q, k, v and gate, up either in one call each
// (linear_forward_shared_input: one parallel region) or one linear_forward per matrix. Compare
// the two in one run: --benchmark_filter=decode_projections --benchmark_enable_random_interleaving=true
struct decode_layer_weights {
  tensor<T> wq, wk, wv, wo, w_gate, w_up, w_down;
};
template <bool Shared>
void decode_projections(benchmark::State& s) {
  constexpr index_t layers = 8;
  std::vector<decode_layer_weights> w;
  for (index_t l = 0; l < layers; ++l) {
    const auto seed = static_cast<std::uint64_t>(10 * l);
    w.push_back({random_tensor({kD, kD}, seed + 1, 0.05), random_tensor({kD, kD}, seed + 2, 0.05),
                 random_tensor({kD, kD}, seed + 3, 0.05), random_tensor({kD, kD}, seed + 4, 0.05),
                 random_tensor({kF, kD}, seed + 5, 0.05), random_tensor({kF, kD}, seed + 6, 0.05),
                 random_tensor({kD, kF}, seed + 7, 0.05)});
  }
  auto x = random_tensor({1, kD}, 1);
  tensor<T> q({1, kD}), k({1, kD}), v({1, kD}), gate({1, kF}), up({1, kF}), y({1, kD});
  using target = ops::linear_target<T>;
  for (auto _ : s)
    for (auto& lw : w) {
      if constexpr (Shared) {
        ops::linear_forward_shared_input(backend::cpu{}, x.mat(),
                                         std::array{target{lw.wq.mat(), q.mat()}, target{lw.wk.mat(), k.mat()},
                                                    target{lw.wv.mat(), v.mat()}});
      } else {
        ops::linear_forward(backend::cpu{}, x.mat(), lw.wq.mat(), q.mat());
        ops::linear_forward(backend::cpu{}, x.mat(), lw.wk.mat(), k.mat());
        ops::linear_forward(backend::cpu{}, x.mat(), lw.wv.mat(), v.mat());
      }
      ops::linear_forward(backend::cpu{}, q.mat(), lw.wo.mat(), y.mat());
      if constexpr (Shared) {
        ops::linear_forward_shared_input(backend::cpu{}, y.mat(),
                                         std::array{target{lw.w_gate.mat(), gate.mat()}, target{lw.w_up.mat(), up.mat()}});
      } else {
        ops::linear_forward(backend::cpu{}, y.mat(), lw.w_gate.mat(), gate.mat());
        ops::linear_forward(backend::cpu{}, y.mat(), lw.w_up.mat(), up.mat());
      }
      ops::linear_forward(backend::cpu{}, up.mat(), lw.w_down.mat(), x.mat());
    }
  s.SetItemsProcessed(static_cast<std::int64_t>(s.iterations()));  // tokens
  const double bytes = static_cast<double>(layers) * sizeof(T) * (4.0 * kD * kD + 3.0 * kD * kF);
  s.counters["GB/s"] = benchmark::Counter(bytes * static_cast<double>(s.iterations()) / 1e9, benchmark::Counter::kIsRate);
}

// training: one layer's products that read a shared input, forward and backward — attention's
// q, k, v from x and SwiGLU's gate, up from the MLP's input — either on stacked weights, as the
// layers run them (nn/attention.hpp, nn/mlp.hpp: [W_q; W_k; W_v] and [W_gate; W_up], one GEMM
// forward, one for dx with K = 3D or 2F, one dW), or one product per matrix, as before round 27.
// Compare the two in one run: --benchmark_filter=stacked_projections --benchmark_enable_random_interleaving=true
template <bool Stacked>
void stacked_projections(benchmark::State& s) {
  auto x = random_tensor({kM, kD}, 1), wqkv = random_tensor({3 * kD, kD}, 2, 0.05), wgu = random_tensor({2 * kF, kD}, 3, 0.05);
  auto dqkv = random_tensor({kM, 3 * kD}, 4), dgu = random_tensor({kM, 2 * kF}, 5);
  tensor<T> qkv({kM, 3 * kD}), gu({kM, 2 * kF}), dx({kM, kD}), dwqkv({3 * kD, kD}), dwgu({2 * kF, kD});
  std::vector<tensor<T>> outs, douts;  // the separate products' own (M, D) and (M, F) buffers
  for (index_t j = 0; j < 5; ++j) {
    const index_t n = j < 3 ? kD : kF;
    outs.emplace_back(std::vector<index_t>{kM, n});
    douts.push_back(random_tensor({kM, n}, static_cast<std::uint64_t>(6 + j)));
  }
  // product j of the five: rows j of [W_q; W_k; W_v] for j < 3, then rows j − 3 of [W_gate; W_up]
  auto part = [](tensor<T>& of_three, tensor<T>& of_two, index_t j) {
    return j < 3 ? detail::row_part(of_three.mat(), j, 3) : detail::row_part(of_two.mat(), j - 3, 2);
  };
  for (auto _ : s) {
    if constexpr (Stacked) {
      ops::linear_forward(backend::cpu{}, x.mat(), wqkv.mat(), qkv.mat());
      ops::linear_forward(backend::cpu{}, x.mat(), wgu.mat(), gu.mat());
      ops::linear_backward(backend::cpu{}, x.mat(), wqkv.mat(), dqkv.mat(), dx.mat(), dwqkv.mat());
      ops::linear_backward(backend::cpu{}, x.mat(), wgu.mat(), dgu.mat(), dx.mat(), dwgu.mat());
    } else {
      for (index_t j = 0; j < 5; ++j) ops::linear_forward(backend::cpu{}, x.mat(), part(wqkv, wgu, j), outs[j].mat());
      for (index_t j = 0; j < 5; ++j)
        ops::linear_backward(backend::cpu{}, x.mat(), part(wqkv, wgu, j), douts[j].mat(), dx.mat(), part(dwqkv, dwgu, j));
    }
  }
  per_token(s, 3 * 2.0 * kM * kD * (3 * kD + 2 * kF));
}

// ---- norms ----
template <class B>
void rms_norm_forward(benchmark::State& s) {
  auto x = random_tensor({kM, kD}, 1), g = random_tensor({kD}, 2), y = tensor<T>({kM, kD}), r = tensor<T>({kM});
  for (auto _ : s) ops::rms_norm_forward(B{}, x.mat(), g.data(), T(1e-6), y.mat(), r.data());
  per_token(s);
}
template <class B>
void rms_norm_backward(benchmark::State& s) {
  auto x = random_tensor({kM, kD}, 1), g = random_tensor({kD}, 2), dy = random_tensor({kM, kD}, 3);
  tensor<T> y({kM, kD}), r({kM}), dx({kM, kD}), dg({kD});
  ops::rms_norm_forward(B{}, x.mat(), g.data(), T(1e-6), y.mat(), r.data());
  for (auto _ : s) ops::rms_norm_backward(B{}, x.mat(), g.data(), r.data(), dy.mat(), dx.mat(), dg.data());
  per_token(s);
}
template <class B>
void layer_norm_forward(benchmark::State& s) {
  auto x = random_tensor({kM, kD}, 1), g = random_tensor({kD}, 2), b = random_tensor({kD}, 3);
  tensor<T> y({kM, kD}), mean({kM}), rstd({kM});
  for (auto _ : s) ops::layer_norm_forward(B{}, x.mat(), g.data(), b.data(), T(1e-6), y.mat(), mean.data(), rstd.data());
  per_token(s);
}
template <class B>
void layer_norm_backward(benchmark::State& s) {
  auto x = random_tensor({kM, kD}, 1), g = random_tensor({kD}, 2), b = random_tensor({kD}, 3), dy = random_tensor({kM, kD}, 4);
  tensor<T> y({kM, kD}), mean({kM}), rstd({kM}), dx({kM, kD}), dg({kD}), db({kD});
  ops::layer_norm_forward(B{}, x.mat(), g.data(), b.data(), T(1e-6), y.mat(), mean.data(), rstd.data());
  for (auto _ : s)
    ops::layer_norm_backward(B{}, x.mat(), g.data(), mean.data(), rstd.data(), dy.mat(), dx.mat(), dg.data(), db.data());
  per_token(s);
}

// ---- activations (M, F) ----
template <class B>
void swiglu_forward(benchmark::State& s) {
  auto gate = random_tensor({kM, kF}, 1), up = random_tensor({kM, kF}, 2), out = tensor<T>({kM, kF});
  for (auto _ : s) ops::swiglu_forward(B{}, gate.mat(), up.mat(), out.mat());
  per_token(s);
}
template <class B>
void swiglu_backward(benchmark::State& s) {
  auto gate = random_tensor({kM, kF}, 1), up = random_tensor({kM, kF}, 2), dout = random_tensor({kM, kF}, 3);
  tensor<T> dgate({kM, kF}), dup({kM, kF});
  for (auto _ : s) ops::swiglu_backward(B{}, gate.mat(), up.mat(), dout.mat(), dgate.mat(), dup.mat());
  per_token(s);
}
template <class B>
void gelu_forward(benchmark::State& s) {
  auto x = random_tensor({kM, kF}, 1), y = tensor<T>({kM, kF});
  for (auto _ : s) ops::gelu_forward(B{}, x.mat(), y.mat());
  per_token(s);
}
template <class B>
void gelu_backward(benchmark::State& s) {
  auto x = random_tensor({kM, kF}, 1), dy = random_tensor({kM, kF}, 2), dx = tensor<T>({kM, kF});
  for (auto _ : s) ops::gelu_backward(B{}, x.mat(), dy.mat(), dx.mat());
  per_token(s);
}

// ---- embedding, RoPE, cross-entropy ----
template <class B>
void embedding_forward(benchmark::State& s) {
  const auto tok = random_tokens(kM, kV, 1);
  auto table = random_tensor({kV, kD}, 2), out = tensor<T>({kM, kD});
  for (auto _ : s) ops::embedding_forward(B{}, tok.data(), kM, table.mat(), out.mat());
  per_token(s);
}
template <class B>
void embedding_backward(benchmark::State& s) {
  const auto tok = random_tokens(kM, kV, 1);
  auto dout = random_tensor({kM, kD}, 2), dtable = tensor<T>({kV, kD});
  for (auto _ : s) ops::embedding_backward(B{}, tok.data(), kM, dout.mat(), dtable.mat());
  per_token(s);
}
template <class B>
void rope_forward(benchmark::State& s) {
  auto x = random_tensor({kM, kD}, 1);
  for (auto _ : s) ops::rope_forward(B{}, x.mat(), kSeq, kH, 0, 10000.0);
  per_token(s);
}
template <class B>
void rope_backward(benchmark::State& s) {
  auto x = random_tensor({kM, kD}, 1);
  for (auto _ : s) ops::rope_backward(B{}, x.mat(), kSeq, kH, 0, 10000.0);
  per_token(s);
}
template <class B>
void cross_entropy_fwd_bwd(benchmark::State& s) {
  auto logits = random_tensor({kM, kV}, 1), dlogits = tensor<T>({kM, kV});
  const auto targets = random_tokens(kM, kV, 2);
  for (auto _ : s) benchmark::DoNotOptimize(ops::cross_entropy(B{}, logits.mat(), targets.data(), dlogits.mat(), T(1)));
  per_token(s);
}

// ---- causal attention over (batch, head): q kᵀ, softmax, p v ----
constexpr double attention_flops = 2.0 * 2.0 * kBatch * kH * (kSeq * (kSeq + 1) / 2.0) * (kD / kH);  // causal half
template <class B>
void causal_attention_forward(benchmark::State& s) {
  auto q = random_tensor({kM, kD}, 1), k = random_tensor({kM, kD}, 2), v = random_tensor({kM, kD}, 3);
  tensor<T> out({kM, kD}), probs({kBatch, kH, kSeq, kSeq});
  for (auto _ : s) ops::causal_attention_forward(B{}, q.mat(), k.mat(), v.mat(), kBatch, kSeq, kH, out.mat(), probs.data());
  per_token(s, attention_flops);
}
template <class B>
void causal_attention_backward(benchmark::State& s) {
  auto q = random_tensor({kM, kD}, 1), k = random_tensor({kM, kD}, 2), v = random_tensor({kM, kD}, 3);
  auto dout = random_tensor({kM, kD}, 4);
  tensor<T> out({kM, kD}), probs({kBatch, kH, kSeq, kSeq}), dq({kM, kD}), dk({kM, kD}), dv({kM, kD});
  ops::causal_attention_forward(B{}, q.mat(), k.mat(), v.mat(), kBatch, kSeq, kH, out.mat(), probs.data());
  for (auto _ : s)
    ops::causal_attention_backward(B{}, q.mat(), k.mat(), v.mat(), probs.data(), dout.mat(), kBatch, kSeq, kH, dq.mat(),
                                   dk.mat(), dv.mat());
  per_token(s, 2 * attention_flops);
}
// decode: one query per head over a KV cache of 256 positions (batch 1)
template <class B>
void attention_decode(benchmark::State& s) {
  auto q = random_tensor({1, kD}, 1), kc = random_tensor({1, kSeq, kD}, 2), vc = random_tensor({1, kSeq, kD}, 3);
  tensor<T> out({1, kD});
  for (auto _ : s) ops::attention_decode(B{}, q.mat(), kc.data(), vc.data(), kSeq, kSeq, kH, out.mat());
  s.SetItemsProcessed(static_cast<std::int64_t>(s.iterations()));
}

// ---- optimizer: one AdamW update of a parameter vector the size of the default model ----
template <class B>
void adamw_step(benchmark::State& s) {
  const index_t n = 6'500'000;  // ≈ the default model's parameters
  auto p = random_tensor({n}, 1), g = random_tensor({n}, 2);
  tensor<T> m({n}), v({n});
  ops::adamw_step_args a{1e-3, 0.9, 0.95, 1e-8, 0.1, 1};
  for (auto _ : s) {
    ops::adamw_step(B{}, p.data(), g.data(), m.data(), v.data(), n, a);
    ++a.step;
  }
  s.SetItemsProcessed(static_cast<std::int64_t>(s.iterations()) * n);
  s.SetBytesProcessed(static_cast<std::int64_t>(s.iterations()) * n * 7 * static_cast<std::int64_t>(sizeof(T)));
}

template <class B>
std::string name(const char* op) {
  return std::string(op) + "/" + B::name;
}

#define ATTNRES_BENCH_OP(op)                                                                           \
  benchmark::RegisterBenchmark(name<backend::reference>(#op).c_str(), op<backend::reference>)         \
      ->Unit(benchmark::kMillisecond)                                                                  \
      ->UseRealTime();                                                                                 \
  benchmark::RegisterBenchmark(name<backend::cpu>(#op).c_str(), op<backend::cpu>)                     \
      ->Unit(benchmark::kMillisecond)                                                                  \
      ->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  reexec_with_avx512_openblas(argv);  // core/blas.hpp
  ATTNRES_BENCH_OP(linear_forward)
  ATTNRES_BENCH_OP(linear_backward)
  ATTNRES_BENCH_OP(linear_forward_1row)
  ATTNRES_BENCH_OP(linear_forward_1row_bf16)
  benchmark::RegisterBenchmark("decode_projections/separate", decode_projections<false>)
      ->Unit(benchmark::kMicrosecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark("decode_projections/shared", decode_projections<true>)
      ->Unit(benchmark::kMicrosecond)
      ->UseRealTime();
  for (const bool stacked : {false, true})
    benchmark::RegisterBenchmark(stacked ? "stacked_projections/stacked" : "stacked_projections/separate",
                                 stacked ? stacked_projections<true> : stacked_projections<false>)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  ATTNRES_BENCH_OP(rms_norm_forward)
  ATTNRES_BENCH_OP(rms_norm_backward)
  ATTNRES_BENCH_OP(layer_norm_forward)
  ATTNRES_BENCH_OP(layer_norm_backward)
  ATTNRES_BENCH_OP(swiglu_forward)
  ATTNRES_BENCH_OP(swiglu_backward)
  ATTNRES_BENCH_OP(gelu_forward)
  ATTNRES_BENCH_OP(gelu_backward)
  ATTNRES_BENCH_OP(embedding_forward)
  ATTNRES_BENCH_OP(embedding_backward)
  ATTNRES_BENCH_OP(rope_forward)
  ATTNRES_BENCH_OP(rope_backward)
  ATTNRES_BENCH_OP(cross_entropy_fwd_bwd)
  ATTNRES_BENCH_OP(causal_attention_forward)
  ATTNRES_BENCH_OP(causal_attention_backward)
  ATTNRES_BENCH_OP(attention_decode)
  ATTNRES_BENCH_OP(adamw_step)
  benchmark::AddCustomContext("blas", blas_description());
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
