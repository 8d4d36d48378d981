#pragma once
// Shared pieces of the attnres command-line tool: model dispatch for the tool's build, data
// loading, and the subcommand table.

#include "args.hpp"

#include <attnres/attnres.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace attnres::cli {

// The tool runs float models on the cpu backend. It is built for RMSNorm models (the DESIGN.md
// default) to keep its compile time down; LayerNorm models work through the library.
template <class F>
decltype(auto) with_model(const architecture& a, F&& f) {
  return with_lm_type<float, backend::cpu, RMSNorm>(a, std::forward<F>(f));
}

// Every subcommand: parse(argv) → run; returns the process exit code.
int train_main(int argc, char** argv);
int eval_main(int argc, char** argv);
int generate_main(int argc, char** argv);
int forward_main(int argc, char** argv);
int ablate_main(int argc, char** argv);
int bench_main(int argc, char** argv);

// ---- model options shared by train, ablate and bench -------------------------------------------

// Defaults of the size options (train/bench use DESIGN.md's default size, ablate a smaller one).
struct model_size_defaults {
  const char* layers = "8";
  const char* d_model = "256";
  const char* heads = "4";
  const char* d_ff = "704";
};

// --layers --d-model --heads --d-ff --mlp --tie
inline void declare_model_size_options(args& a, model_size_defaults d = {}) {
  a.option("layers", "N", "transformer layers (L = 2N sublayers)", d.layers)
      .option("d-model", "D", "model width", d.d_model)
      .option("heads", "H", "attention heads", d.heads)
      .option("d-ff", "F", "MLP hidden width", d.d_ff)
      .option("mlp", "swiglu|gelu", "MLP kind", "swiglu")
      .flag("tie", "tie the LM head to the token embedding");
}

// --residual --blocks
inline void declare_residual_options(args& a) {
  a.option("residual", "sum|full|block", "residual policy", "block")
      .option("blocks", "N", "number of blocks for --residual block (1, 2, 4 or 8)", "4");
}

// The byte-level (vocabulary 256) model the size options describe, validated.
inline model_config model_config_from(const args& a) {
  model_config cfg;
  cfg.vocab = 256;
  cfg.n_layers = a.integer("layers", 1, 4096);
  cfg.d_model = a.integer("d-model", 2, 1 << 16);
  cfg.n_heads = a.integer("heads", 1, 4096);
  cfg.d_ff = a.integer("d-ff", 1, 1 << 20);
  cfg.tie_embeddings = a.on("tie");
  cfg.validate();
  return cfg;
}

inline std::string mlp_from(const args& a) {
  const std::string mlp = a.str("mlp");
  if (mlp != "swiglu" && mlp != "gelu") throw usage_problem("--mlp must be swiglu or gelu, got '" + mlp + "'");
  return mlp;
}

// --decode-weights f32|bf16 (generate, bench): what the decode steps multiply with
inline void declare_decode_weights_option(args& a) {
  a.option("decode-weights", "f32|bf16",
           "decode with the model's float32 weights or with bf16 copies of its weight matrices (half the bytes "
           "read per token; the prompt still runs in float32)",
           "f32");
}
inline decode_weights decode_weights_from(const args& a) {
  const std::string w = a.str("decode-weights");
  if (w != "f32" && w != "bf16") throw usage_problem("--decode-weights must be f32 or bf16, got '" + w + "'");
  return parse_decode_weights(w);
}

// --seq --batch --accum --steps --lr --warmup --weight-decay --grad-clip into opt (train, ablate)
inline void read_batch_and_optimizer_options(const args& a, train::train_options& opt) {
  opt.seq = a.integer("seq", 1, 1 << 16);
  opt.batch = a.integer("batch", 1, 1 << 16);
  opt.accum = static_cast<int>(a.integer("accum", 1, 1 << 16));
  opt.steps = a.integer("steps", 1);
  opt.lr = a.number("lr", 1e-12, 10);
  opt.warmup = a.integer("warmup", -1);
  opt.weight_decay = a.number("weight-decay", 0, 10);
  opt.grad_clip = a.number("grad-clip", 0);
}

// The architecture --residual / --blocks / --mlp name (blocks: N for block, L for full, 0 for sum).
inline architecture architecture_from(const args& a, const model_config& cfg) {
  architecture arch;
  arch.residual = a.str("residual");
  arch.mlp = mlp_from(a);
  if (arch.residual != "sum" && arch.residual != "full" && arch.residual != "block")
    throw usage_problem("--residual must be sum, full or block, got '" + arch.residual + "'");
  arch.blocks = arch.residual == "block" ? static_cast<int>(a.integer("blocks", 1, 1 << 16))
                : arch.residual == "full" ? cfg.n_sublayers()
                                          : 0;
  return arch;
}

// The median of timings (the mean of the middle two for an even count; 0 for none).
inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n == 0 ? 0.0 : n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Reads --threads (0 = OpenMP's default) and applies it.
inline void apply_threads(const args& a) {
  const long long n = a.integer("threads", 0, 1024);
#if defined(_OPENMP)
  if (n > 0) omp_set_num_threads(static_cast<int>(n));
#else
  (void)n;
#endif
}

// Loads a model file: its metadata picks the architecture, then f(model) runs.
template <class F>
void with_model_file(const std::filesystem::path& path, F&& f) {
  const auto file = io::safetensors_file::load(path);
  const auto meta = from_metadata(file.metadata(), file.source_name());  // (clang 14 cannot capture
  const model_config& cfg = meta.first;                                    //  structured bindings)
  with_model(meta.second, [&]<class Model>(std::type_identity<Model>) {
    Model model(cfg);
    model.load(file);
    f(model);
  });
}

inline std::vector<std::int32_t> bytes_to_tokens(std::string_view text) {
  std::vector<std::int32_t> out;
  out.reserve(text.size());
  for (unsigned char c : text) out.push_back(c);
  return out;
}

}  // namespace attnres::cli
