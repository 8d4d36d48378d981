// 01 — depth mixing, the first thing to look at.
//
// Random "sublayer outputs" of growing magnitude are pushed through the three residual
// policies, exactly as a transformer stack would (gather → sublayer → push). For every gather
// point we print the depth-attention weights α (mean over tokens; one column per source) and
// the RMS of the input it hands to its sublayer. Things to notice:
//   * Sum's input RMS grows with depth: the residual stream just accumulates (PreNorm dilution).
//   * With zero-initialised queries, AttnRes mixes uniformly: α = 1/n (the paper's step-0 state).
//   * With trained-looking queries (here: random), α becomes selective, and the input RMS stays
//     bounded, because h is a convex combination of its sources.
//   * BlockAttnRes<N> mixes only N+1 block sums, and its partial-sum source appears and
//     disappears within each block.
//
// Usage: 01_depth_mixing [--quick] [--layers N] [--width D] [--tokens M]

#include <attnres/attnres.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>

namespace {

struct options {
  int transformer_layers = 4;  // L = 2 × this sublayers
  attnres::index_t width = 64;
  attnres::index_t tokens = 256;
  bool quick = false;
};

double rms(const attnres::tensor<float>& x) {
  double s = 0;
  for (float v : x) s += double(v) * v;
  return std::sqrt(s / static_cast<double>(x.size()));
}

template <class Tag>
void show(const options& opt, bool random_queries) {
  using Policy = typename Tag::template with<float, attnres::backend::cpu>;
  const int L = 2 * opt.transformer_layers;
  const attnres::index_t M = opt.tokens, D = opt.width;
  std::string title = std::string(Tag::name);
  if constexpr (requires { Tag::blocks; }) title += "<" + std::to_string(Tag::blocks) + ">";
  std::optional<Policy> made;
  try {
    made.emplace(attnres::residual_config{.n_sublayers = L, .d_model = D});
  } catch (const attnres::config_error& e) {  // e.g. N blocks that do not divide L
    std::printf("\n== %s: skipped: %s\n", title.c_str(), e.what());
    return;
  }
  const Policy& policy = *made;
  auto params = policy.init_params();
  attnres::rng gen(2026);
  if constexpr (!std::is_same_v<Tag, attnres::Sum>)
    if (random_queries) attnres::fill_normal(params.query, gen, 0.0, 0.3);

  typename Policy::Cache cache;
  attnres::tensor<float> x0({M, D}), h({M, D}), v({M, D});
  attnres::fill_normal(x0, gen);
  policy.begin(cache, x0.mat(), /*keep_for_backward=*/false);

  std::printf("\n== %s%s  (L = %d sublayers, D = %td, %td tokens)\n", title.c_str(),
              std::is_same_v<Tag, attnres::Sum> ? "" : (random_queries ? ", random queries" : ", zero queries"), L, D,
              M);
  std::printf("  point   input RMS   α over sources (mean over tokens)\n");
  auto report = [&](int l) {
    std::printf("  %5s   %9.3f  ", l == L + 1 ? "out" : std::to_string(l).c_str(), rms(h));
    const auto a = policy.depth_weights(cache, l);
    for (attnres::index_t j = 0; j < a.rows; ++j) {
      double mean = 0;
      for (attnres::index_t t = 0; t < a.cols; ++t) mean += a(j, t);
      std::printf(" %.2f", mean / static_cast<double>(a.cols));
    }
    if (a.rows == 0) std::printf(" (fixed unit weights: h = x0 + Σ v)");
    std::printf("\n");
  };
  for (int l = 1; l <= L; ++l) {
    policy.gather(params, cache, l, h.mat());
    report(l);
    // a stand-in sublayer: output magnitude grows with depth, as in a PreNorm network
    attnres::fill_normal(v, gen, 0.0, 0.5 + 0.25 * l);
    policy.push(cache, l, v.mat());
  }
  policy.gather(params, cache, L + 1, h.mat());
  report(L + 1);
}

}  // namespace

int main(int argc, char** argv) {
  options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> long {
      if (i + 1 >= argc) throw attnres::usage_error("missing value after " + a);
      return std::stol(argv[++i]);
    };
    if (a == "--quick") opt.quick = true, opt.tokens = 16, opt.width = 16;
    else if (a == "--layers") opt.transformer_layers = static_cast<int>(next());
    else if (a == "--width") opt.width = next();
    else if (a == "--tokens") opt.tokens = next();
    else {
      std::fprintf(stderr, "usage: %s [--quick] [--layers N] [--width D] [--tokens M]\n", argv[0]);
      return 2;
    }
  }
  try {
    show<attnres::Sum>(opt, false);
    show<attnres::FullAttnRes>(opt, false);
    show<attnres::FullAttnRes>(opt, true);
    show<attnres::BlockAttnRes<2>>(opt, true);
    show<attnres::BlockAttnRes<4>>(opt, true);
  } catch (const attnres::error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
