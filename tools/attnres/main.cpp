// attnres — train, evaluate, sample and probe Attention-Residual language models.
//
//   attnres train     train a byte-level model with a chosen residual policy
//   attnres eval      validation loss and bits per byte of a saved model
//   attnres generate  sample text with the KV cache
//   attnres forward   logits of one sequence as a .npy file (the PyTorch interop probe)
//   attnres ablate    train residual variants under identical conditions and compare them
//   attnres bench     time a training step, a prefill and a decode step of one model

#include "common.hpp"

#include <cstring>

namespace {

void print_usage(std::FILE* to) {
  std::fputs(
      "usage: attnres <command> [options]\n\n"
      "commands:\n"
      "  train      train a byte-level language model (residual: sum | full | block)\n"
      "  eval       validation loss and bits per byte of a saved model\n"
      "  generate   sample text from a saved model with the KV cache\n"
      "  forward    write the logits of one sequence as a NumPy .npy file\n"
      "  ablate     train residual variants (sum, full, block:N) alike and compare them\n"
      "  bench      time a training step, a prefill and a KV-cache decode step\n\n"
      "Run 'attnres <command> --help' for the options of a command.\n",
      to);
}

}  // namespace

int main(int argc, char** argv) {
  attnres::reexec_with_avx512_openblas(argv);  // OpenBLAS's AVX-512 kernels where it misses them
  if (argc < 2) {
    print_usage(stderr);
    return 2;
  }
  const std::string cmd = argv[1];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    print_usage(stdout);
    return 0;
  }
  if (cmd == "--version") {
    std::printf("attnres %s\n", attnres::version_string);
    return 0;
  }
  // The commands that spend their time in matrix products say when the environment holds
  // OpenBLAS to kernels narrower than the CPU (it is the user's choice, so it is kept).
  const bool asks_help = argc > 2 && (std::strcmp(argv[2], "--help") == 0 || std::strcmp(argv[2], "-h") == 0);
  if ((cmd == "train" || cmd == "ablate" || cmd == "bench") && !asks_help)
    if (const std::string note = attnres::openblas_kernel_note(); !note.empty())
      std::fprintf(stderr, "attnres: note: %s\n", note.c_str());
  if (cmd == "train") return attnres::cli::train_main(argc, argv);
  if (cmd == "eval") return attnres::cli::eval_main(argc, argv);
  if (cmd == "generate") return attnres::cli::generate_main(argc, argv);
  if (cmd == "forward") return attnres::cli::forward_main(argc, argv);
  if (cmd == "ablate") return attnres::cli::ablate_main(argc, argv);
  if (cmd == "bench") return attnres::cli::bench_main(argc, argv);
  std::fprintf(stderr, "attnres: unknown command '%s'\n\n", cmd.c_str());
  print_usage(stderr);
  return 2;
}
