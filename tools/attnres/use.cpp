// attnres eval / generate / forward — the commands that use a saved model.

#include "common.hpp"
#include "run_command.hpp"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <numbers>
#include <optional>

namespace attnres::cli {

int eval_main(int argc, char** argv) {
  args a("eval", "Validation loss (nats per byte) and bits per byte of a saved model on a text file, over\n"
                 "consecutive windows of --seq bytes from its start. With --decode-weights the windows run\n"
                 "position by position through the KV cache instead (as generation does), with those weights.");
  a.option("weights", "FILE", "model file (e.g. DIR/model.safetensors from train)", "", true)
      .option("data", "FILE", "text to evaluate on", "", true)
      .option("seq", "T", "window length (bytes)", "256")
      .option("batch", "B", "windows per forward pass", "8")
      .option("max-windows", "N", "evaluate at most N windows", "256")
      .option("threads", "N", "threads (0: all cores)", "0")
      .option("decode-weights", "f32|bf16",
              "evaluate by decoding through the KV cache with float32 or bf16 weights (default: forward passes)", "");
  return run_command(a, argc, argv, [&] {
    apply_threads(a);
    const index_t seq = a.integer("seq", 1, 1 << 16), batch = a.integer("batch", 1, 1 << 16);
    const index_t max_windows = a.integer("max-windows", 1);
    std::optional<decode_weights> by_decoding;
    if (!a.str("decode-weights").empty()) by_decoding = decode_weights_from(a);
    const auto corpus = train::byte_corpus::from_file(a.str("data"));
    with_model_file(a.str("weights"), [&](auto& model) {
      using Model = std::remove_reference_t<decltype(model)>;
      const double loss = train::trainer<Model>::evaluate_loss(model, corpus, seq, max_windows, batch, by_decoding);
      const auto windows = std::min<std::size_t>((corpus.size() - 1) / static_cast<std::size_t>(seq), max_windows);
      std::printf("validation loss %.4f nats/byte, %.4f bits per byte (%zu windows of %td bytes%s)\n", loss,
                  loss / std::numbers::ln2, windows, seq,
                  by_decoding ? (*by_decoding == decode_weights::bf16 ? ", decoded with bf16 weights"
                                                                      : ", decoded with float32 weights")
                              : "");
    });
  });
}

int generate_main(int argc, char** argv) {
  args a("generate", "Sample text from a saved byte-level model: the prompt is prefilled, then each new byte is\n"
                     "decoded with the KV cache and printed as it is chosen.");
  a.option("weights", "FILE", "model file", "", true)
      .option("prompt", "TEXT", "the text to continue", "", true)
      .option("tokens", "N", "bytes to generate", "200")
      .option("temperature", "X", "sampling temperature (0: greedy)", "0.8")
      .option("top-k", "K", "sample among the K most likely bytes (0: all)", "40")
      .option("seed", "S", "sampling seed", "1")
      .option("threads", "N", "threads (0: all cores)", "0");
  declare_decode_weights_option(a);
  return run_command(a, argc, argv, [&] {
    apply_threads(a);
    const decode_weights weights = decode_weights_from(a);
    const std::string prompt = a.str("prompt");
    if (prompt.empty()) throw usage_problem("--prompt must not be empty");
    const index_t n = a.integer("tokens", 0, 1 << 20);
    const sampling_config sc{a.number("temperature", 0, 100), a.integer("top-k", 0)};
    rng gen(static_cast<std::uint64_t>(a.integer("seed", 0)));
    with_model_file(a.str("weights"), [&](auto& model) {
      std::fwrite(prompt.data(), 1, prompt.size(), stdout);
      std::fflush(stdout);
      const auto tokens = bytes_to_tokens(prompt);
      generate(
          model, tokens, n, sc, gen,
          [](std::int32_t t) {
            std::fputc(static_cast<unsigned char>(t), stdout);
            std::fflush(stdout);
          },
          weights);
      std::fputc('\n', stdout);
    });
  });
}

int forward_main(int argc, char** argv) {
  args a("forward", "One forward pass over the bytes of --input as a single sequence; writes the float32 logits\n"
                    "[T, V] as a NumPy .npy file. Any PyTorch model that follows DESIGN.md's tensor names gives\n"
                    "the same logits (tools/reference/attnres_ref.py).");
  a.option("weights", "FILE", "model file", "", true)
      .option("input", "FILE", "the sequence: its bytes are the tokens", "", true)
      .option("out", "FILE", "where to write the logits (.npy)", "", true)
      .option("threads", "N", "threads (0: all cores)", "0");
  return run_command(a, argc, argv, [&] {
    apply_threads(a);
    std::ifstream in(a.str("input"), std::ios::binary);
    if (!in) throw io_error("cannot read '" + a.str("input") + "'");
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (text.empty()) throw io_error("'" + a.str("input") + "' is empty: nothing to run");
    with_model_file(a.str("weights"), [&](auto& model) {
      const auto tokens = bytes_to_tokens(text);
      const index_t T = static_cast<index_t>(tokens.size());
      const auto logits = model.forward(tokens, 1, T);
      io::save_npy(a.str("out"), logits.data, {T, logits.cols});
      std::printf("wrote logits [%td, %td] to %s\n", T, logits.cols, a.str("out").c_str());
    });
  });
}

}  // namespace attnres::cli
