// 03 — training a language model on the GPU (needs the CUDA backend: cmake --preset cuda).
//
// The same LM and trainer as on the CPU; only the backend tag changes:
//
//   using Model = attnres::LM<attnres::BlockAttnRes<4>, attnres::RMSNorm, attnres::SwiGLU, attnres::backend::cuda>;
//
// Parameters, gradients, activations, AdamW moments and KV caches then live in device memory.
// Token ids go up per step, logits come back to the host, and weights are saved through host
// copies into the same safetensors file a CPU model reads (`attnres generate --weights ...`).
//
// Trains a small byte-level model for a few hundred steps on a text file (or a built-in text),
// prints the loss, samples a continuation of a prompt, and saves the weights.
//
// Usage: 03_cuda_train [--steps N] [--data FILE] [--out FILE.safetensors]
//   Without a CUDA device it prints "needs a CUDA device" and exits with 77 (ctest: skipped).

#include <attnres/cuda.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using Model = attnres::LM<attnres::BlockAttnRes<4>, attnres::RMSNorm, attnres::SwiGLU, attnres::backend::cuda>;

const char* builtin_text =
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
    "foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light, "
    "it was the season of Darkness, it was the spring of hope, it was the winter of despair, we had "
    "everything before us, we had nothing before us, we were all going direct to Heaven, we were all going "
    "direct the other way - in short, the period was so far like the present period, that some of its "
    "noisiest authorities insisted on its being received, for good or for evil, in the superlative degree "
    "of comparison only.\n";

struct options {
  std::int64_t steps = 300;
  std::string data;  // empty: the built-in text, repeated
  std::string out = "03_cuda_train.safetensors";
};

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const bool has_value = i + 1 < argc;
    if (!std::strcmp(argv[i], "--steps") && has_value) {
      o.steps = std::atoll(argv[++i]);
    } else if (!std::strcmp(argv[i], "--data") && has_value) {
      o.data = argv[++i];
    } else if (!std::strcmp(argv[i], "--out") && has_value) {
      o.out = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s [--steps N] [--data FILE] [--out FILE.safetensors]\n", argv[0]);
      std::exit(2);
    }
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const options opt = parse(argc, argv);
  if (!attnres::backend_traits<attnres::backend::cuda>::available()) {
    std::puts("03_cuda_train needs a CUDA device, but none is available: train on the CPU with "
              "LM<..., backend::cpu> (or `attnres train`) instead");
    return 77;
  }
  try {
    std::string text;
    for (int i = 0; i < 40; ++i) text += builtin_text;
    const auto corpus = opt.data.empty() ? attnres::train::byte_corpus::from_bytes(text)
                                         : attnres::train::byte_corpus::from_file(opt.data);
    const attnres::index_t seq = 64;
    auto [train_data, val_data] = corpus.split(0.1, seq + 1);

    // L = 8 sublayers in N = 4 blocks of 2; byte vocabulary.
    Model model({.vocab = 256, .d_model = 128, .n_heads = 4, .n_layers = 4, .d_ff = 352});
    model.init_weights(1);
    attnres::train::train_options to;
    to.batch = 16;
    to.seq = seq;
    to.steps = opt.steps;
    to.lr = 3e-3;
    to.log_every = 25;
    attnres::train::trainer<Model> trainer(model, to, train_data, val_data);
    const auto summary = trainer.run([&](const attnres::train::step_report& r) {
      if (r.step % to.log_every == 0 || r.step == to.steps)
        std::printf("step %4lld  loss %.4f  lr %.2e  |g| %.3f  %.0f tokens/s\n", static_cast<long long>(r.step), r.loss,
                    r.lr, r.grad_norm, r.tokens_per_second);
    });
    std::printf("validation loss %.4f (%.3f bits per byte)\n", summary.val_loss, summary.val_bits_per_byte);

    // Generation runs on the device too (prefill, then one token at a time through the KV caches).
    const std::string prompt = "It was the ";
    const std::vector<std::int32_t> ids(prompt.begin(), prompt.end());
    attnres::rng gen(7);
    const auto out = attnres::generate(model, ids, 120, {.temperature = 0.8, .top_k = 20}, gen);
    std::string sample(out.begin(), out.end());
    std::printf("sample: %s\n", sample.c_str());

    model.save(opt.out);
    std::printf("saved the weights to %s (loadable by LM<..., backend::cpu> and `attnres generate`)\n", opt.out.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
