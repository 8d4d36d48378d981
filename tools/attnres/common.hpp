#pragma once
// Shared pieces of the attnres command-line tool: model dispatch for the tool's build, data
// loading, and the subcommand table.

#include "args.hpp"

#include <attnres/attnres.hpp>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>

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
