// The cost of each residual policy per sublayer, compared with the standard residual (Sum):
// Sum, FullAttnRes, BlockAttnRes<2>, <4>, <8>, bound as ::with<float, attnres::backend::cpu>,
// L = 16 sublayers, D = 256, M = 2048 tokens (batch 8 × sequence 256).
//
// Only the policy's own calls are timed (manual timing). A sublayer is stood in for by
// "v_l = h_l + offset" with a fixed random offset, computed between the timed calls and excluded
// from the time; the backward uses one fixed random dh for every sublayer, so it needs no
// stand-in compute at all. Modes:
//
//   inference      begin(keep_for_backward = false); for l: gather(l), push(l, h_l + offset);
//                  gather(L+1)
//   train_forward  the same with keep_for_backward = true (the policy keeps what backward needs)
//   fwd_bwd        train_forward, then begin_backward; gather_backward(L+1);
//                  for l = L..1: source_grad(l), gather_backward(l, dh); source_grad(0)
//   decode_cached  inference on one token (M = 1, a decode step's calls), nothing in between:
//                  the policy's rows stay in the caches from one call to the next
//   decode         the same, and the sublayer stand-in also reads the next 1/L of 25.7 MB of
//                  "weights" (what the default model's sublayers read per token): the policy's
//                  parameter rows and block sums are then as far away as in a real decode step.
//                  As in LM::decode_step, the policy's prefetch(l + 1) (timed with it) comes
//                  before the last quarter of that stream. The gap between the two modes is the
//                  policy's wait on memory (docs/performance.md)
//   decode_no_prefetch  decode without the policy's prefetch
//
// Counters:
//   us_per_sublayer                     policy time per pass / L, in µs
//   items_per_second                    tokens per second through the whole L-sublayer stack
//   model_bytes_per_token_per_layer     the paper's Table 1 memory-access model (forward modes
//                                       only; see model_bytes_per_token_per_layer() below)
//   actual_bytes_per_token_per_layer    what this implementation reads + writes per token per
//                                       sublayer in this mode, counted from the code (see
//                                       traffic_floats_per_token() below)
//   GB/s                                actual bytes / time (10⁹ bytes per second)
//   omp_threads                         threads the cpu backend may use
//
// Run with --benchmark_repetitions=5 --benchmark_report_aggregates_only=true and compare
// medians; see bench/README.md.

#include <attnres/core/backend.hpp>
#include <attnres/core/parallel.hpp>
#include <attnres/core/random.hpp>
#include <attnres/core/tensor.hpp>
#include <attnres/residual/block_attn_res.hpp>
#include <attnres/residual/full_attn_res.hpp>
#include <attnres/residual/residual_policy.hpp>
#include <attnres/residual/sum.hpp>

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

namespace {

using idx = std::ptrdiff_t;  // attnres's index type
using attnres::tensor;
using T = float;

constexpr int kL = 16;      // sublayers
constexpr idx kD = 256;     // model width
constexpr idx kM = 2048;    // tokens: batch 8 × sequence 256
constexpr double kFloat = sizeof(T);

enum class mode { inference, train_forward, fwd_bwd, decode_cached, decode, decode_no_prefetch };

constexpr const char* mode_name(mode m) {
  switch (m) {
    case mode::inference: return "inference";
    case mode::train_forward: return "train_forward";
    case mode::fwd_bwd: return "fwd_bwd";
    case mode::decode_cached: return "decode_cached";
    case mode::decode: return "decode";
    case mode::decode_no_prefetch: return "decode_no_prefetch";
  }
  return "?";
}
constexpr bool decoding(mode m) { return m == mode::decode_cached || m == mode::decode || m == mode::decode_no_prefetch; }

// The default model's weights read per token: 8 layers × (4·D² attention + 3·D·704 SwiGLU).
constexpr idx kDecodeWeights = 8 * (4 * kD * kD + 3 * kD * 704);

template <class P>
struct policy_info;

template <>
struct policy_info<attnres::Sum> {
  static std::string label() { return "sum"; }
};
template <>
struct policy_info<attnres::FullAttnRes> {
  static std::string label() { return "full"; }
};
template <int N>
struct policy_info<attnres::BlockAttnRes<N>> {
  static std::string label() { return "block<" + std::to_string(N) + ">"; }
  static constexpr int blocks = N;
};

// ---- the paper's memory-access model (Table 1), bytes per token per layer ------------------
//
//   Sum                 3·D·4           read the stream h and the layer output v, write h + v
//   BlockAttnRes<N>     (N/S + 5)·D·4   S = L/N layers per block: Phase 1 reads the N block
//                                       representations once per block for all S queries
//                                       (N/S per layer); Phase 2 and the partial sum cost 5·D
//   FullAttnRes         the paper's (S + N)·D·4 assumes Full run in two phases with grouped
//                       layers. Our Full is one-shot: gather point l reads its l sources and
//                       writes h, so we use the naive count, averaged over the gather points
//                         (1/(L+1)) · Σ_{l=1}^{L+1} (l + 1)·D·4      (= 10·D·4 at L = 16)
template <class P>
double model_bytes_per_token_per_layer() {
  if constexpr (std::is_same_v<P, attnres::Sum>) {
    return 3.0 * kD * kFloat;
  } else if constexpr (std::is_same_v<P, attnres::FullAttnRes>) {
    double sum = 0;
    for (int l = 1; l <= kL + 1; ++l) sum += (l + 1.0) * kD * kFloat;
    return sum / (kL + 1);
  } else {
    const double N = policy_info<P>::blocks, S = double(kL) / N;
    return (N / S + 5.0) * kD * kFloat;
  }
}

// ---- what our implementation moves, floats per token for one whole pass ---------------------
//
// Counted from the code in include/attnres/residual/*.hpp and ops/cpu/depth_attention.hpp. Unit:
// floats per token, a row being D floats (an (M,D) tensor) and a scalar 1 float (an (M) vector
// or one row of an (n,M) α/logits matrix). Rules:
//   * every tensor a library call touches is counted once per call (read and/or written), even
//     when the kernel re-reads a row from L1 (e.g. the cpu backward reads dh once per source);
//   * accumulation (+=) into a tensor counts as a read and a write, an overwrite as a write;
//   * buffers are reused from the previous pass (the warm-up pass allocates them);
//   * per-call D-sized vectors (w, g, dw, dg, folded queries) are negligible and not counted.
// Divided by L this gives actual_bytes_per_token_per_layer.
struct traffic {
  double floats = 0;
  void rows(double n) { floats += n * kD; }
  void scalars(double n) { floats += n; }
  void copy_rows(double n = 1) { rows(2 * n); }                       // read + write
  void key_norm() { rows(1), scalars(1); }                           // read v, write 1/r
  void row_dots() { rows(2), scalars(1); }                           // read a, b; write c
  void forward(double n) { rows(n + 1), scalars(2 * n); }            // v, 1/r, h, α
  void stats(double n, double S) { rows(n + S), scalars(n + S * (2 + n)); }  // v, 1/r; o, m, ℓ, logits
  void merge(double n, bool partial) {  // o, m, ℓ, logits, [P, 1/r_P]; h, α. Without a partial
    // h is o itself (Phase 1 wrote it, normalised): nothing to move but α.
    rows(partial ? 3 : 0), scalars(2 + n + (partial ? 1 : 0) + n + (partial ? 1 : 0));
  }
  // v, 1/r; per point dh, α, c (and its kept logits); dsources read + written (+=) or written
  void backward(double n, double S, bool overwrite = false, double kept_logits = 0) {
    rows(n + S + (overwrite ? 1 : 2) * n), scalars(n + S * (n + 1) + kept_logits * n);
  }
};

template <class P>
double traffic_floats_per_token(mode m) {
  const bool bwd = m == mode::fwd_bwd;
  traffic t;
  if constexpr (std::is_same_v<P, attnres::Sum>) {
    // forward: begin copies x0 into the stream and checks it; gather copies the stream;
    // push checks v (key norm) and adds it to the stream.
    t.copy_rows(), t.key_norm();
    for (int l = 1; l <= kL + 1; ++l) t.copy_rows();
    for (int l = 1; l <= kL; ++l) t.key_norm(), t.rows(3);
    if (bwd) {  // zero dstream; gather_backward adds dh to it; source_grad copies it out
      t.rows(1);
      for (int l = 1; l <= kL + 1; ++l) t.rows(3), t.copy_rows();
    }
  } else if constexpr (std::is_same_v<P, attnres::FullAttnRes>) {
    // forward: begin/push copy the source into the cache and compute its 1/r; gather l runs the
    // one-shot forward over l sources (training keeps a view of h, not a copy).
    for (int j = 0; j <= kL; ++j) t.copy_rows(), t.key_norm();
    for (int l = 1; l <= kL + 1; ++l) t.forward(l);
    if (bwd) {  // per point c = dh·h and the backward over l sources (the output's writes them)
      for (int l = kL + 1; l >= 1; --l) t.row_dots(), t.backward(l, 1, l == kL + 1);
      for (int l = kL; l >= 0; --l) t.copy_rows();
    }
  } else {
    constexpr int N = policy_info<P>::blocks;
    const int S = kL / N;
    t.copy_rows(), t.key_norm();  // begin: b_0 = x0
    for (int l = 1; l <= kL; ++l) {
      const int i = (l - 1) % S, nb = (l - 1) / S + 1;
      if (i == 0) {
        if (l > 1) t.key_norm();  // close the previous block (the last push wrote b_n)
        t.stats(nb, S);           // Phase 1 for the block's S queries
      } else {
        t.key_norm();  // 1/r of the partial sum (training: in its own slot, no snapshot copy)
      }
      t.merge(nb, i > 0);  // Phase 2 (training keeps a view of h, not a copy)
    }
    t.key_norm(), t.forward(N + 1);  // output: close the last block, one-shot over N+1
    for (int l = 1; l <= kL; ++l) t.rows((l - 1) % S == 0 ? 2 : 3);  // push: copy v, or partial + v
    if (bwd) {  // dh is written into gradient_buffer(), so gather_backward copies none
      t.row_dots(), t.backward(1, 1, true);  // the output point: c = dh·h, then b_N only
      for (int l = kL; l >= 1; --l) {
        const int i = (l - 1) % S, nb = (l - 1) / S + 1;
        t.copy_rows();  // source_grad: dpartial -> dv (a block's last sublayer swaps ∂ℒ/∂b_n in first)
        t.row_dots();   // gather_backward: c = dh·h
        if (i > 0)
          t.backward(1, 1);  // Phase 2 backward into the partial
        else if (nb < N)
          t.backward(nb, S, false, S);  // Phase 1 backward of the block's S points, kept logits
        else  // the last block's pass also carries the output's terms for b_0..b_{N-1}: it writes
          t.backward(nb, S + 1, true, S);
      }
      t.copy_rows();  // source_grad(0)
    }
  }
  return t.floats;
}

// ---- the benchmark ---------------------------------------------------------------------------

template <class P>
void bm_policy(benchmark::State& state, mode md) {
  using R = typename P::template with<T, attnres::backend::cpu>;
  using clock = std::chrono::steady_clock;
  const R r(attnres::residual_config{kL, kD, 1e-6, true});
  attnres::rng gen(7);
  auto params = r.init_params();
  if constexpr (!std::is_same_v<P, attnres::Sum>) {  // queries ~ N(0, 0.5), gains ~ N(1, 0.1)
    attnres::fill_normal(params.query, gen, 0.0, 0.5);
    attnres::fill_normal(params.key_gain, gen, 1.0, 0.1);
  }
  auto grads = r.zero_grads();
  typename R::Cache cache;
  const idx M = decoding(md) ? 1 : kM;
  auto normal = [&](double stddev) {
    tensor<T> t({M, kD});
    attnres::fill_normal(t, gen, 0.0, stddev);
    return t;
  };
  const tensor<T> x0 = normal(1.0), offset = normal(1.0), dh = normal(1.0);
  tensor<T> v({M, kD}), dv({M, kD});
  const bool keep = md == mode::train_forward || md == mode::fwd_bwd, bwd = md == mode::fwd_bwd;
  // decode: the weights the sublayers stream between the policy's calls, a 1/L share each
  const bool streaming = md == mode::decode || md == mode::decode_no_prefetch;
  tensor<T> weights({streaming ? kDecodeWeights : 0});
  idx weights_at = 0;
  auto stream_weights = [&](idx bytes) {
    const idx share = bytes / idx(sizeof(T));
    T s = 0;
    for (idx k = 0; k < share; k += 64 / idx(sizeof(T))) s += weights.data()[(weights_at + k) % weights.size()];
    weights_at = (weights_at + share) % weights.size();
    benchmark::DoNotOptimize(s);
  };
  // Training keeps every gather output (as a model does: its sublayers' backward needs them, and
  // the policies read them in place); inference reuses one buffer.
  std::vector<tensor<T>> hs(keep ? kL + 1 : 1, tensor<T>({M, kD}));
  auto h_at = [&](int l) -> tensor<T>& { return hs[keep ? l - 1 : 0]; };

  // One pass; returns the seconds spent inside the policy's calls.
  auto pass = [&]() {
    double seconds = 0;
    auto t0 = clock::now();
    auto lap = [&]() { seconds += std::chrono::duration<double>(clock::now() - t0).count(); };
    r.begin(cache, x0.mat(), keep);
    for (int l = 1; l <= kL; ++l) {
      r.gather(params, cache, l, h_at(l).mat());
      lap();
      // the sublayer stand-in, not timed: v = h + offset
      const tensor<T>& h = h_at(l);
      for (idx k = 0; k < h.size(); ++k) v.data()[k] = h.data()[k] + offset.data()[k];
      if (streaming) {  // as LM::decode_step: the prefetch comes before the last quarter
        // (≈ an output projection's share of the weights), timed with the policy
        const idx bytes = weights.size() * idx(sizeof(T)) / kL;
        stream_weights(bytes - bytes / 4);
        if constexpr (requires { r.prefetch(params, cache, l + 1); })
          if (md == mode::decode) {
            t0 = clock::now();
            r.prefetch(params, cache, l + 1);
            lap();
          }
        stream_weights(bytes / 4);
      }
      t0 = clock::now();
      r.push(cache, l, v.mat());
    }
    r.gather(params, cache, kL + 1, h_at(kL + 1).mat());
    if (bwd) {
      r.begin_backward(cache);
      // The sublayer's (or final norm's) backward writes dh_l, not timed. Like a model, it
      // writes it where the policy keeps it when the policy offers a buffer (Block: no copy in
      // gather_backward).
      auto upstream = [&](int l) {
        auto dh_l = dh.mat();
        if constexpr (requires { r.gradient_buffer(cache, l); })
          if (tensor<T>* b = r.gradient_buffer(cache, l)) {
            lap();
            attnres::copy(dh.mat(), b->mat());
            dh_l = b->mat();
            t0 = clock::now();
          }
        return dh_l;
      };
      r.gather_backward(params, cache, kL + 1, upstream(kL + 1), grads);
      for (int l = kL; l >= 1; --l) {
        r.source_grad(cache, l, dv.mat());
        const auto dh_l = upstream(l);
        r.gather_backward(params, cache, l, dh_l, grads);
      }
      r.source_grad(cache, 0, dv.mat());
    }
    lap();
    benchmark::DoNotOptimize(h_at(kL + 1).data());
    benchmark::DoNotOptimize(dv.data());
    benchmark::ClobberMemory();
    return seconds;
  };

  pass();  // warm-up: the first pass allocates the cache
  double total = 0;
  for (auto _ : state) {
    const double s = pass();
    total += s;
    state.SetIterationTime(s);
  }

  const double iters = double(state.iterations());
  const double actual = traffic_floats_per_token<P>(md) * kFloat / kL;
  state.SetItemsProcessed(state.iterations() * M);
  state.counters["us_per_sublayer"] = benchmark::Counter(total * 1e6 / kL, benchmark::Counter::kAvgIterations);
  if (!decoding(md)) {  // (decoding's one-shot gathers are not what the traffic model counts)
    if (md != mode::fwd_bwd) state.counters["model_bytes_per_token_per_layer"] = model_bytes_per_token_per_layer<P>();
    state.counters["actual_bytes_per_token_per_layer"] = actual;
    state.counters["GB/s"] = benchmark::Counter(actual * kL * kM * iters * 1e-9, benchmark::Counter::kIsRate);
  }
  state.counters["omp_threads"] = attnres::max_threads();
}

template <class P>
void register_policy() {
  for (const mode m : {mode::inference, mode::train_forward, mode::fwd_bwd, mode::decode_cached, mode::decode, mode::decode_no_prefetch}) {
    auto* b = benchmark::RegisterBenchmark((policy_info<P>::label() + "/" + mode_name(m)).c_str(), bm_policy<P>, m)
                  ->Unit(benchmark::kMicrosecond)
                  ->UseManualTime();
    // A decode pass is microseconds of policy time beside ≈ 1 ms of untimed weight streaming:
    // a fixed count, not a minimum of timed seconds.
    if (decoding(m)) b->Iterations(2000);
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("shape", "L = 16 sublayers, M = 2048 tokens (batch 8 x seq 256), D = 256, float, cpu");
  benchmark::AddCustomContext("omp_max_threads", std::to_string(attnres::max_threads()));
  register_policy<attnres::Sum>();
  register_policy<attnres::FullAttnRes>();
  register_policy<attnres::BlockAttnRes<2>>();
  register_policy<attnres::BlockAttnRes<4>>();
  register_policy<attnres::BlockAttnRes<8>>();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
