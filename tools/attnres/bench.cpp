// attnres bench — time a training step, a prefill and a KV-cache decode step of one model.
//
// The attnres half of bench/compare_torch.py (which runs the same model in PyTorch and alternates
// the two), and a quick way to see the speed of a configuration. Inputs are random tokens; the
// weights are the usual initialisation. Every timed repetition is kept and the median reported
// (these machines are noisy). One JSON object per mode goes to stdout with --json.
//
//   train    zero_grad, forward + backward (mean cross-entropy), global-norm clip at 1, AdamW step
//            on a batch × seq batch; tokens/s = batch·seq / step time
//   prefill  the prompt (batch × seq) through the model filling a KV cache, no gradients
//   decode   batch 1: a prompt of --prompt tokens, then --new tokens one at a time through the KV
//            cache; tokens/s = 1 / (median time of one decode step). --decode-weights bf16 decodes
//            with bf16 copies of the weight matrices (LM::start_decode)
//
// GFLOP/s use model/cost.hpp's count; peak RSS is the process's (getrusage), so run one mode per
// process to attribute it (compare_torch.py does).

#include "common.hpp"
#include "run_command.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace attnres::cli {

namespace {

using clock_type = std::chrono::steady_clock;
using json = nlohmann::json;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

std::vector<std::int32_t> random_tokens(rng& g, index_t n, index_t vocab) {
  std::vector<std::int32_t> t(static_cast<std::size_t>(n));
  for (auto& x : t) x = static_cast<std::int32_t>(g.below(static_cast<std::uint64_t>(vocab)));
  return t;
}

std::vector<std::string> split_modes(const std::string& list) {
  std::vector<std::string> out;
  std::stringstream ss(list);
  for (std::string m; std::getline(ss, m, ',');) {
    if (m != "train" && m != "prefill" && m != "decode")
      throw usage_problem("--modes: '" + m + "' is not one of train, prefill, decode");
    out.push_back(m);
  }
  if (out.empty()) throw usage_problem("--modes is empty");
  return out;
}

struct bench_options {
  index_t batch = 8, seq = 256, steps = 10, warmup = 2, prompt = 64, new_tokens = 128;
  decode_weights weights = decode_weights::f32;
};

template <class Model>
json bench_train(Model& model, const architecture& arch, const bench_options& o) {
  rng g(7);
  const index_t n = o.batch * o.seq;
  const auto tokens = random_tokens(g, n, model.config().vocab);
  const auto targets = random_tokens(g, n, model.config().vocab);
  auto params = model.parameters();
  train::adamw<float, typename Model::backend> opt({.lr = 1e-4}, params);
  std::vector<double> times;
  double loss = 0;
  for (index_t s = 0; s < o.warmup + o.steps; ++s) {
    const auto t0 = clock_type::now();
    model.zero_grad();
    loss = model.forward_backward(tokens, targets, o.batch, o.seq);
    train::clip_grad_norm(params, 1.0);
    opt.step(params);
    if (s >= o.warmup) times.push_back(seconds_since(t0));
  }
  const double t = median(times);
  const double flops = training_flops_per_token(model.config(), arch, o.seq) * static_cast<double>(n);
  return {{"mode", "train"},           {"median_s", t},
          {"tokens_per_s", n / t},     {"gflops_per_s", flops / t / 1e9},
          {"times_s", times},          {"loss", loss}};
}

template <class Model>
json bench_prefill(Model& model, const architecture& arch, const bench_options& o) {
  rng g(8);
  const auto tokens = random_tokens(g, o.batch * o.seq, model.config().vocab);
  std::vector<double> times;
  for (index_t s = 0; s < o.warmup + o.steps; ++s) {
    auto state = model.start_decode(o.batch, o.seq);
    const auto t0 = clock_type::now();
    model.prefill(state, tokens, o.seq);
    if (s >= o.warmup) times.push_back(seconds_since(t0));
  }
  const double t = median(times);
  const double n = static_cast<double>(o.batch * o.seq);
  return {{"mode", "prefill"},
          {"median_s", t},
          {"tokens_per_s", n / t},
          {"gflops_per_s", forward_flops_per_token(model.config(), arch, o.seq) * n / t / 1e9},
          {"times_s", times}};
}

template <class Model>
json bench_decode(Model& model, const bench_options& o) {
  rng g(9);
  const index_t V = model.config().vocab;
  std::vector<double> per_token;
  for (index_t s = 0; s < std::max<index_t>(1, o.steps / 5); ++s) {  // a few whole generations
    auto state = model.start_decode(1, o.prompt + o.new_tokens, o.weights);
    model.prefill(state, random_tokens(g, o.prompt, V), o.prompt);
    std::int32_t next = 0;
    for (index_t k = 0; k < o.new_tokens; ++k) {
      const auto t0 = clock_type::now();
      const auto logits = model.decode_step(state, std::span<const std::int32_t>(&next, 1));
      per_token.push_back(seconds_since(t0));
      next = static_cast<std::int32_t>(std::max_element(logits.data, logits.data + V) - logits.data);  // greedy
    }
  }
  const double t = median(per_token);
  return {{"mode", "decode"},
          {"median_s", t},
          {"tokens_per_s", 1.0 / t},
          {"tokens", per_token.size()},
          {"decode_weights", std::string(to_string(o.weights))}};
}

}  // namespace

int bench_main(int argc, char** argv) {
  args a("bench", "Time a training step, a prefill and a KV-cache decode step of one model on random tokens\n"
                  "(medians over repetitions). The attnres half of bench/compare_torch.py.");
  declare_residual_options(a);
  declare_model_size_options(a);
  a.option("modes", "LIST", "comma-separated: train, prefill, decode", "train,prefill,decode")
      .option("seq", "T", "sequence length (train, prefill)", "256")
      .option("batch", "B", "sequences per batch (train, prefill)", "8")
      .option("steps", "N", "timed repetitions (train, prefill; decode runs N/5 generations)", "10")
      .option("warmup", "N", "untimed repetitions first", "2")
      .option("prompt", "N", "decode: prompt tokens before the timed steps", "64")
      .option("new", "N", "decode: timed decode steps per generation", "128")
      .option("threads", "N", "threads (0: all cores)", "0")
      .flag("json", "print one JSON object per mode (and nothing else) on stdout");
  declare_decode_weights_option(a);

  return run_command(a, argc, argv, [&] {
    apply_threads(a);
    const model_config cfg = model_config_from(a);
    const architecture arch = architecture_from(a, cfg);
    bench_options o;
    o.batch = a.integer("batch", 1, 1 << 16);
    o.seq = a.integer("seq", 1, 1 << 16);
    o.steps = a.integer("steps", 1, 1 << 20);
    o.warmup = a.integer("warmup", 0, 1 << 20);
    o.prompt = a.integer("prompt", 1, 1 << 16);
    o.new_tokens = a.integer("new", 1, 1 << 16);
    o.weights = decode_weights_from(a);
    const auto modes = split_modes(a.str("modes"));
    const bool as_json = a.on("json");
    int threads = 1;
#if defined(_OPENMP)
    threads = omp_get_max_threads();
#endif

    with_model(arch, [&]<class Model>(std::type_identity<Model>) {
      Model model(cfg);
      model.init_weights(1);
      for (const auto& mode : modes) {
        json r = mode == "train"     ? bench_train(model, arch, o)
                 : mode == "prefill" ? bench_prefill(model, arch, o)
                                     : bench_decode(model, o);
        r["framework"] = "attnres";
        r["model"] = Model::describe(model.arch());
        r["residual"] = arch.residual;
        r["blocks"] = arch.blocks;
        r["threads"] = threads;
        r["batch"] = mode == "decode" ? 1 : o.batch;
        r["seq"] = mode == "decode" ? o.prompt + o.new_tokens : o.seq;
        r["peak_rss_mib"] = peak_rss_mib();
        if (as_json) {
          std::printf("%s\n", r.dump().c_str());
        } else {
          const std::string label = mode == "decode" && o.weights == decode_weights::bf16 ? "decode16" : mode;
          std::printf("%-8s %-28s median %9.3f ms  %10.1f tokens/s", label.c_str(), r["model"].get<std::string>().c_str(),
                      r["median_s"].get<double>() * 1e3, r["tokens_per_s"].get<double>());
          if (r.contains("gflops_per_s")) std::printf("  %6.1f GFLOP/s", r["gflops_per_s"].get<double>());
          std::printf("  peak RSS %.0f MiB\n", r["peak_rss_mib"].get<double>());
        }
        std::fflush(stdout);
      }
    });
  });
}

}  // namespace attnres::cli
