// attnres train — train a byte-level language model with a chosen residual policy.

#include "common.hpp"
#include "run_command.hpp"

#include <cmath>
#include <cstdio>

namespace attnres::cli {

int train_main(int argc, char** argv) {
  args a("train", "Train a byte-level language model (vocabulary 256) on a text file, with the residual\n"
                  "connection chosen by --residual. Writes DIR/metrics.csv and a checkpoint\n"
                  "(DIR/model.safetensors + DIR/train_state.safetensors) that --resume continues\n"
                  "bit-identically and that eval / generate / forward read.");
  declare_residual_options(a);
  declare_model_size_options(a);
  a.option("seq", "T", "sequence length (bytes)", "256")
      .option("batch", "B", "sequences per micro-batch", "8")
      .option("accum", "K", "micro-batches per optimizer step (gradient accumulation)", "1")
      .option("steps", "N", "optimizer steps", "200")
      .option("lr", "LR", "peak learning rate (warmup, then cosine to 10%)", "1e-3")
      .option("warmup", "N", "warmup steps (default: min(100, steps / 10))", "-1")
      .option("weight-decay", "X", "AdamW weight decay (not on norm gains and pseudo-queries)", "0.1")
      .option("grad-clip", "X", "clip the global gradient norm (0: off)", "1.0")
      .option("data", "FILE", "training text; without it the built-in synthetic corpus is used", "")
      .option("val-fraction", "F", "fraction of the data held out for validation (its end)", "0.1")
      .option("seed", "S", "seed of the initialisation and the data order", "1")
      .option("eval-every", "N", "validate every N steps (0: at the end only)", "0")
      .option("eval-windows", "N", "validation windows of T bytes", "16")
      .option("log-every", "N", "metrics/log line every N steps", "10")
      .option("save-every", "N", "also checkpoint every N steps (0: at the end only)", "0")
      .option("out", "DIR", "output directory", "", true)
      .option("resume", "DIR", "continue from the checkpoint in DIR (model sizes come from it)", "")
      .option("threads", "N", "threads (0: all cores)", "0");

  return run_command(a, argc, argv, [&] {
    apply_threads(a);
    train::train_options opt;
    read_batch_and_optimizer_options(a, opt);
    opt.seed = static_cast<std::uint64_t>(a.integer("seed", 0));
    opt.eval_every = a.integer("eval-every", 0);
    opt.eval_windows = a.integer("eval-windows", 1);
    opt.log_every = a.integer("log-every", 1);
    const std::int64_t save_every = a.integer("save-every", 0);
    const std::filesystem::path out = a.str("out");
    const std::string resume = a.str("resume");

    model_config cfg;
    architecture arch;
    if (!resume.empty()) {
      const auto f = io::safetensors_file::load(std::filesystem::path(resume) / "model.safetensors");
      std::tie(cfg, arch) = from_metadata(f.metadata(), f.source_name());
    } else {
      cfg = model_config_from(a);
      arch = architecture_from(a, cfg);
    }

    train::byte_corpus corpus = [&] {
      if (a.str("data").empty()) {
        std::printf("note: no --data given; training on the built-in synthetic corpus (generated English-like\n"
                    "      sentences, 4 MB, deterministic) — pass --data FILE for real text.\n");
        return train::byte_corpus::synthetic(4'000'000, 2026);
      }
      return train::byte_corpus::from_file(a.str("data"));
    }();
    // (not a structured binding: clang 14 cannot capture those in the lambda below)
    const auto split = corpus.split(a.number("val-fraction", 0.001, 0.9), static_cast<std::size_t>(opt.seq) + 1);
    const train::byte_corpus& train_data = split.first;
    const train::byte_corpus& val_data = split.second;

    with_model(arch, [&]<class Model>(std::type_identity<Model>) {
      Model model(cfg);
      model.init_weights(opt.seed);
      train::trainer<Model> tr(model, opt, train_data, val_data);
      if (!resume.empty()) tr.resume(resume);
      std::filesystem::create_directories(out);
      const bool append = !resume.empty() && std::filesystem::exists(out / "metrics.csv");
      train::metrics_log log(out / "metrics.csv",
                             {"step", "lr", "loss", "grad_norm", "tokens_per_s", "elapsed_s", "val_loss"},
                             append ? train::metrics_log::mode::append : train::metrics_log::mode::truncate);
      index_t n_params = 0;
      for (const auto& p : model.parameters()) n_params += p.size();
      std::printf("model: %s, %td layers (L = %d sublayers), d_model %td, %td heads, d_ff %td, %.2fM parameters\n",
                  Model::describe(model.arch()).c_str(), cfg.n_layers, cfg.n_sublayers(), cfg.d_model, cfg.n_heads,
                  cfg.d_ff, static_cast<double>(n_params) / 1e6);
      std::printf("data: %zu training bytes, %zu validation bytes; batch %td × seq %td × accum %d\n",
                  train_data.size(), val_data.size(), opt.batch, opt.seq, opt.accum);
      if (!resume.empty()) std::printf("resuming from %s at step %lld\n", resume.c_str(), static_cast<long long>(tr.step()));
      std::fflush(stdout);
      train::progress bar(opt.steps, opt.log_every);
      const std::int64_t first = tr.step();
      const auto summary = tr.run(
          [&](const train::step_report& r) {
            bar.update(r.step, r.loss, r.tokens_per_second,
                       train::progress::eta(r.step - first, opt.steps - first, r.elapsed_seconds));
            if (!std::isnan(r.val_loss)) bar.note("step " + std::to_string(r.step) + ": validation loss " +
                                                  std::to_string(r.val_loss));
          },
          &log, out, save_every);
      bar.finish();
      std::printf("done: %lld steps in %.1f s, %.0f tokens/s; train loss %.4f, validation loss %.4f (%.4f bits/byte)\n",
                  static_cast<long long>(summary.steps), summary.seconds, summary.tokens_per_second, summary.final_loss,
                  summary.val_loss, summary.val_bits_per_byte);
      std::printf("wrote %s, %s, %s\n", (out / "model.safetensors").c_str(), (out / "train_state.safetensors").c_str(),
                  (out / "metrics.csv").c_str());
    });
  });
}

}  // namespace attnres::cli
