// The paper's invariants (attnres-paper.md §8, §11) checked on the policies.

#include "policy_types.hpp"

#include <attnres/ops/depth_attention.hpp>

#include <algorithm>
#include <cmath>

using namespace attnres_test;
using attnres::BlockAttnRes;
using attnres::FullAttnRes;
using attnres::Sum;
using attnres::tensor;

namespace {

// Drives a policy with fixed, random sublayer outputs (ignoring h), so two policies can be fed
// exactly the same sources.
template <class Policy>
struct fixed_pushes {
  Policy policy;
  typename Policy::Params params;
  typename Policy::Cache cache;
  std::vector<tensor<float>> h;  // L+1 × (M,D)
  int in_place = 0;  // how many v_l were written into the policy's source_buffer
  fixed_pushes(int L, index_t D) : policy({.n_sublayers = L, .d_model = D}), params(policy.init_params()) {}
  // use_source_buffer: write v_l where the policy offers (source_buffer), as LM's forward does
  void run(const tensor<float>& x0, const std::vector<tensor<float>>& v, bool keep_for_backward = false,
           bool use_source_buffer = false) {
    const int L = policy.n_sublayers();
    h.assign(L + 1, tensor<float>({x0.rows(), x0.cols()}));
    in_place = 0;
    policy.begin(cache, x0.mat(), keep_for_backward);
    for (int l = 1; l <= L; ++l) {
      policy.gather(params, cache, l, h[l - 1].mat());
      if constexpr (requires { policy.source_buffer(cache, l); })
        if (auto* buffer = use_source_buffer ? policy.source_buffer(cache, l) : nullptr) {
          attnres::copy(v[l - 1].mat(), buffer->mat());
          policy.push(cache, l, buffer->mat());
          ++in_place;
          continue;
        }
      policy.push(cache, l, v[l - 1].mat());
    }
    policy.gather(params, cache, L + 1, h[L].mat());
  }
};

struct random_sources {
  tensor<float> x0;
  std::vector<tensor<float>> v;
  random_sources(int L, index_t M, index_t D, std::uint64_t seed) {
    attnres::rng gen(seed);
    x0 = random_tensor<float>({M, D}, gen);
    for (int l = 0; l < L; ++l) v.push_back(random_tensor<float>({M, D}, gen, 0.0, 1.0 + l));
  }
};

}  // namespace

TEMPLATE_TEST_CASE("α sums to 1 for every token at every gather point", "[residual][invariant]", FullAttnRes,
                   BlockAttnRes<1>, BlockAttnRes<2>, BlockAttnRes<4>, BlockAttnRes<8>) {
  auto s = make_stack<TestType, float, attnres::backend::cpu>(8, 13, 17, 5);
  s.forward(false);
  for (int l = 1; l <= 9; ++l) {
    const auto a = s.policy.depth_weights(s.cache, l);
    REQUIRE(a.rows == s.policy.n_sources(l));
    REQUIRE(a.cols == 17);
    for (index_t t = 0; t < a.cols; ++t) {
      double sum = 0;
      for (index_t j = 0; j < a.rows; ++j) {
        REQUIRE(a(j, t) > 0);
        sum += a(j, t);
      }
      CHECK(sum == Approx(1.0).epsilon(1e-6));
    }
  }
}

TEMPLATE_TEST_CASE("zero queries give uniform α, and h_l = (Sum's h_l) / n_sources", "[residual][invariant]",
                   FullAttnRes, BlockAttnRes<1>, BlockAttnRes<2>, BlockAttnRes<3>) {
  const int L = 6;
  const index_t M = 5, D = 9;
  const random_sources src(L, M, D, 3);
  fixed_pushes<typename TestType::template with<float>> att(L, D);
  fixed_pushes<Sum::with<float>> sum(L, D);
  att.run(src.x0, src.v);
  sum.run(src.x0, src.v);
  for (int l = 1; l <= L + 1; ++l) {
    const auto a = att.policy.depth_weights(att.cache, l);
    const index_t n = att.policy.n_sources(l);
    for (index_t i = 0; i < a.rows * a.cols; ++i) REQUIRE(a.data[i] == Approx(1.0 / n).epsilon(1e-6));
    // zero init is the PreNorm baseline up to a per-gather-point scale (attnres-paper.md §1.3)
    tensor<float> scaled({M, D});
    for (index_t i = 0; i < scaled.size(); ++i) scaled[i] = att.h[l - 1][i] * static_cast<float>(n);
    REQUIRE_CLOSE(scaled.data(), sum.h[l - 1].data(), scaled.size(), 1e-5, 1e-5);
  }
}

TEST_CASE("BlockAttnRes<L> equals FullAttnRes, forward and backward", "[residual][invariant]") {
  auto full = make_stack<FullAttnRes>(6, 5, 4, 77);
  auto block = make_stack<BlockAttnRes<6>>(6, 5, 4, 77);
  REQUIRE(full.forward() == Approx(block.forward()).epsilon(1e-13));
  full.backward();
  block.backward();
  for (int l = 1; l <= 7; ++l) {
    const auto a = full.policy.depth_weights(full.cache, l), b = block.policy.depth_weights(block.cache, l);
    REQUIRE(a.rows == b.rows);
    REQUIRE_CLOSE(a.data, b.data, a.rows * a.cols, 1e-12, 1e-14);
    REQUIRE_CLOSE(full.h[l - 1].data(), block.h[l - 1].data(), full.h[l - 1].size(), 1e-12, 1e-14);
  }
  REQUIRE_CLOSE(full.dx0.data(), block.dx0.data(), full.dx0.size(), 1e-12, 1e-14);
  for (int l = 0; l < 6; ++l) REQUIRE_CLOSE(full.dv[l].data(), block.dv[l].data(), full.dv[l].size(), 1e-12, 1e-14);
  REQUIRE_CLOSE(full.grads.query.data(), block.grads.query.data(), full.grads.query.size(), 1e-12, 1e-14);
  REQUIRE_CLOSE(full.grads.key_gain.data(), block.grads.key_gain.data(), full.grads.key_gain.size(), 1e-12, 1e-14);
}

TEST_CASE("BlockAttnRes<1> mixes exactly [embedding, partial]", "[residual][invariant]") {
  const int L = 4;
  const random_sources src(L, 3, 6, 9);
  fixed_pushes<BlockAttnRes<1>::with<float>> p(L, 6);
  p.run(src.x0, src.v);
  CHECK(p.policy.n_sources(1) == 1);
  for (int l = 2; l <= L + 1; ++l) {
    CHECK(p.policy.n_sources(l) == 2);
    // zero queries: h = (x0 + Σ_{i<l} v_i) / 2
    tensor<float> expect({3, 6});
    for (index_t i = 0; i < expect.size(); ++i) {
      float partial = 0;
      for (int j = 0; j < l - 1; ++j) partial += src.v[j][i];
      expect[i] = (src.x0[i] + partial) / 2;
    }
    REQUIRE_CLOSE(p.h[l - 1].data(), expect.data(), expect.size(), 1e-5, 1e-6);
  }
}

TEST_CASE("27 transformer layers (L = 54) with N = 9 give exactly 10 sources at the output", "[residual][invariant]") {
  const int L = 54;
  const random_sources src(L, 2, 4, 10);
  fixed_pushes<BlockAttnRes<9>::with<float>> p(L, 4);
  p.run(src.x0, src.v);
  CHECK(p.policy.n_sources(L + 1) == 10);
  CHECK(p.policy.depth_weights(p.cache, L + 1).rows == 10);
  CHECK(p.cache.block.size() == 10);  // N + 1 block streams: the memory the paper promises
  // inside a block of S = 6: the first sublayer reads the completed blocks only, later ones add the partial
  CHECK(p.policy.n_sources(7) == 2);  // b_0, b_1
  CHECK(p.policy.n_sources(8) == 3);  // b_0, b_1, partial
}

TEMPLATE_TEST_CASE("the first sublayer's input is the embedding", "[residual][invariant]", Sum, FullAttnRes,
                   BlockAttnRes<1>, BlockAttnRes<2>, BlockAttnRes<4>) {
  auto s = make_stack<TestType, float, attnres::backend::cpu>(4, 7, 3, 2);
  s.forward(false);
  for (index_t i = 0; i < s.x0.size(); ++i) REQUIRE(s.h[0][i] == s.x0[i]);
}

TEMPLATE_TEST_CASE("a key gain gets zero gradient while its query is zero", "[residual][invariant]", FullAttnRes,
                   BlockAttnRes<2>, BlockAttnRes<3>) {
  auto s = make_stack<TestType>(6, 5, 4, 8);
  const index_t D = 5;
  for (int l : {2, 4, 7})  // zero the queries of gather points 2, 4 and the output
    for (index_t d = 0; d < D; ++d) s.params.query[(l - 1) * D + d] = 0;
  s.forward();
  s.backward();
  for (int l = 1; l <= 7; ++l) {
    double norm = 0;
    for (index_t d = 0; d < D; ++d) norm += std::abs(s.grads.key_gain[(l - 1) * D + d]);
    CAPTURE(l);
    if (l == 2 || l == 4 || l == 7)
      CHECK(norm == 0.0);
    else if (s.policy.n_sources(l) > 1)
      CHECK(norm > 0.0);
  }
}

TEST_CASE("α is unchanged when one source is rescaled; h is not", "[residual][invariant][ops]") {
  namespace ops = attnres::ops;
  attnres::rng gen(4);
  const index_t M = 6, D = 11, n = 4;
  std::vector<tensor<double>> v, r;
  for (index_t j = 0; j < n; ++j) {
    v.push_back(random_tensor<double>({M, D}, gen));
    r.emplace_back(std::vector<index_t>{M});
  }
  const auto w = random_tensor<double>({D}, gen, 0, 0.7), g = random_tensor<double>({D}, gen, 1, 0.2);
  auto run = [&](tensor<double>& h, tensor<double>& a) {
    std::vector<ops::depth_source<double>> src;
    for (index_t j = 0; j < n; ++j) {
      ops::key_norm_stats(attnres::backend::reference{}, v[j].mat(), 0.0, r[j].data());  // ε = 0: exact invariance
      src.push_back({v[j].mat(), r[j].data()});
    }
    ops::depth_attention_forward(attnres::backend::reference{}, std::span<const ops::depth_source<double>>(src),
                                 {w.data(), g.data()}, h.mat(), a.mat());
  };
  tensor<double> h1({M, D}), a1({n, M}), h2({M, D}), a2({n, M});
  run(h1, a1);
  for (auto& x : v[2]) x *= 7.5;
  run(h2, a2);
  REQUIRE_CLOSE(a1.data(), a2.data(), a1.size(), 1e-12, 1e-15);
  double diff = 0;
  for (index_t i = 0; i < h1.size(); ++i) diff = std::max(diff, std::abs(h1[i] - h2[i]));
  CHECK(diff > 0.1);
}

TEMPLATE_TEST_CASE("the output is a convex combination of its sources", "[residual][invariant]", FullAttnRes,
                   BlockAttnRes<1>, BlockAttnRes<2>, BlockAttnRes<3>) {
  const int L = 6;
  auto s = make_stack<TestType, float, attnres::backend::cpu>(L, 8, 5, 12);
  s.forward(false);
  // the output's sources: x0 and every v_l (Full), or x0 and the block sums (Block)
  int S = 1;
  if constexpr (!std::is_same_v<TestType, FullAttnRes>) S = L / TestType::blocks;
  std::vector<tensor<float>> sources{s.x0};
  for (int first = 0; first < L; first += S) {
    tensor<float> b({5, 8});
    for (int j = first; j < first + S; ++j)
      for (index_t i = 0; i < b.size(); ++i) b[i] += s.v[j][i];
    sources.push_back(b);
  }
  REQUIRE(static_cast<index_t>(sources.size()) == s.policy.n_sources(L + 1));
  // each channel of the output lies between that channel's min and max over the sources
  for (index_t i = 0; i < s.x0.size(); ++i) {
    float lo = sources[0][i], hi = sources[0][i];
    for (const auto& b : sources) lo = std::min(lo, b[i]), hi = std::max(hi, b[i]);
    REQUIRE(s.h[L][i] >= lo - 1e-5f);
    REQUIRE(s.h[L][i] <= hi + 1e-5f);
  }
}

TEST_CASE("inference keeps only N + 1 block streams; training keeps what backward needs", "[residual][memory]") {
  using P = BlockAttnRes<4>::with<float>;
  auto s = make_stack<BlockAttnRes<4>, float, attnres::backend::cpu>(16, 8, 3, 1);
  s.forward(false);
  CHECK(s.cache.block.size() == 5);
  CHECK(s.cache.h.empty());
  CHECK(s.cache.partial_at.empty());
  s.forward(true);
  CHECK(s.cache.h.size() == 17);
  static_assert(std::is_same_v<decltype(s.policy), const P> || std::is_same_v<decltype(s.policy), P>);
}

// Decoding (inference on ≤ one_shot_max_tokens tokens) attends over all n sources in one pass;
// training and long prompts use the two phases. Same sources, same queries: same h and α.
TEMPLATE_TEST_CASE("Block's one-shot decode path equals its two-phase path", "[residual][invariant]", BlockAttnRes<1>,
                   BlockAttnRes<2>, BlockAttnRes<4>, BlockAttnRes<8>) {
  using P = typename TestType::template with<float, attnres::backend::cpu>;
  const int L = 8;
  const index_t D = 13;
  for (const index_t M : {index_t(1), index_t(5), P::one_shot_max_tokens}) {
    CAPTURE(M);
    const random_sources src(L, M, D, 7 + static_cast<std::uint64_t>(M));
    fixed_pushes<P> one_shot(L, D), two_phase(L, D);
    attnres::rng gen(11);
    for (auto* f : {&one_shot, &two_phase}) {
      attnres::rng g = gen;  // the same random queries and gains for both
      attnres::fill_normal(f->params.query, g, 0.0, 0.7);
      attnres::fill_normal(f->params.key_gain, g, 1.0, 0.2);
    }
    one_shot.run(src.x0, src.v, /*keep_for_backward=*/false);
    two_phase.run(src.x0, src.v, /*keep_for_backward=*/true);  // training: always two-phase
    for (int l = 1; l <= L + 1; ++l) {
      CAPTURE(l);
      REQUIRE_CLOSE(one_shot.h[l - 1].data(), two_phase.h[l - 1].data(), M * D, 1e-5, 1e-6);
      const auto a = one_shot.policy.depth_weights(one_shot.cache, l);
      const auto b = two_phase.policy.depth_weights(two_phase.cache, l);
      REQUIRE(a.rows == b.rows);
      REQUIRE_CLOSE(a.data, b.data, a.rows * a.cols, 1e-5, 1e-7);
    }
  }
}

// LM's forward writes a sublayer's output where the policy keeps it (source_buffer): Block's
// first partial sum of each block (b_n itself when S = 1), every Full source. Same gathers, bit
// for bit, as pushing from the caller's own buffer, in training and inference.
TEMPLATE_TEST_CASE("writing v_l into the policy's source_buffer changes no gather", "[residual][invariant]",
                   FullAttnRes, BlockAttnRes<1>, BlockAttnRes<2>, BlockAttnRes<4>, BlockAttnRes<8>) {
  using P = typename TestType::template with<float, attnres::backend::cpu>;
  const int L = 8;
  const index_t D = 13;
  for (const index_t M : {index_t(1), index_t(5), index_t(37)})
    for (const bool keep : {false, true}) {
      CAPTURE(M, keep);
      const random_sources src(L, M, D, 21 + static_cast<std::uint64_t>(M));
      fixed_pushes<P> own(L, D), in_place(L, D);
      attnres::rng gen(5);
      for (auto* f : {&own, &in_place}) {
        attnres::rng g = gen;
        attnres::fill_normal(f->params.query, g, 0.0, 0.7);
        attnres::fill_normal(f->params.key_gain, g, 1.0, 0.2);
      }
      own.run(src.x0, src.v, keep);
      in_place.run(src.x0, src.v, keep, /*use_source_buffer=*/true);
      // Full keeps every v_l; Block<N> takes the first of each block's S = L/N outputs
      int expected = L;
      if constexpr (!std::is_same_v<TestType, FullAttnRes>) expected = L / own.policy.block_size();
      CHECK(in_place.in_place == expected);
      for (int l = 1; l <= L + 1; ++l) {
        CAPTURE(l);
        REQUIRE(std::equal(own.h[l - 1].data(), own.h[l - 1].data() + M * D, in_place.h[l - 1].data()));
      }
    }
}

TEMPLATE_TEST_CASE("c = dh·h handed to gather_backward by the caller changes nothing", "[residual][invariant]",
                   FullAttnRes, BlockAttnRes<1>, BlockAttnRes<2>, BlockAttnRes<4>, BlockAttnRes<8>) {
  // LM hands the policies c_t = dh_t·h_t from its RMSNorm's backward; here the caller computes it
  // the way the policy would, so every gradient must come out bit for bit the same. A c off by
  // one must change them (the policy reads what it is given).
  using P = typename TestType::template with<float, attnres::backend::cpu>;
  const int L = 8;
  const index_t M = 37, D = 13;
  const random_sources src(L, M, D, 31);
  attnres::rng gen(7);
  std::vector<tensor<float>> dh;
  for (int l = 0; l <= L; ++l) dh.push_back(random_tensor<float>({M, D}, gen));
  struct result {
    std::vector<tensor<float>> dv;
    typename P::Grads grads;
  };
  auto run = [&](int c_from) {  // 0: the policy's own, 1: the caller's, 2: the caller's + 1
    fixed_pushes<P> f(L, D);
    attnres::rng g(5);
    attnres::fill_normal(f.params.query, g, 0.0, 0.7);
    attnres::fill_normal(f.params.key_gain, g, 1.0, 0.2);
    f.run(src.x0, src.v, /*keep_for_backward=*/true);
    result r{std::vector<tensor<float>>(L + 1, tensor<float>({M, D})), f.policy.zero_grads()};
    tensor<float> c({M});
    auto backward = [&](int l) {
      if (c_from == 0) return f.policy.gather_backward(f.params, f.cache, l, dh[l - 1].mat(), r.grads);
      attnres::ops::row_dots(attnres::backend::cpu{}, dh[l - 1].mat(), f.h[l - 1].mat(), c.data());
      if (c_from == 2)
        for (index_t t = 0; t < M; ++t) c[t] += 1.0f;
      f.policy.gather_backward(f.params, f.cache, l, dh[l - 1].mat(), r.grads, static_cast<const float*>(c.data()));
    };
    f.policy.begin_backward(f.cache);
    backward(L + 1);
    for (int l = L; l >= 1; --l) {
      f.policy.source_grad(f.cache, l, r.dv[l].mat());
      backward(l);
    }
    f.policy.source_grad(f.cache, 0, r.dv[0].mat());
    return r;
  };
  const result own = run(0), given = run(1), off = run(2);
  auto same = [](const tensor<float>& a, const tensor<float>& b) { return std::equal(a.data(), a.data() + a.size(), b.data()); };
  for (int l = 0; l <= L; ++l) {
    CAPTURE(l);
    REQUIRE(same(own.dv[l], given.dv[l]));
  }
  REQUIRE(same(own.grads.query, given.grads.query));
  REQUIRE(same(own.grads.key_gain, given.grads.key_gain));
  CHECK_FALSE(same(own.grads.query, off.grads.query));
  CHECK_FALSE(same(own.dv[0], off.dv[0]));
}
