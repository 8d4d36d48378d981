// ops/depth_attention: hand-sized values, the cpu path against the reference on awkward sizes,
// and the two-phase computation against the one-shot softmax.

#include "test_util.hpp"

#include <attnres/core/cpu_isa.hpp>
#include <attnres/ops/depth_attention.hpp>

#include <algorithm>
#include <limits>
#include <vector>

using namespace attnres_test;
namespace ops = attnres::ops;
namespace backend = attnres::backend;
using attnres::tensor;

namespace {

// n random sources (M,D) with their key-norm statistics, and S random gather points.
template <class T>
struct problem {
  index_t M, D, n, S;
  std::vector<tensor<T>> value, inv_rms;
  std::vector<tensor<T>> w, g;
  problem(index_t M_, index_t D_, index_t n_, index_t S_, std::uint64_t seed) : M(M_), D(D_), n(n_), S(S_) {
    attnres::rng gen(seed);
    for (index_t j = 0; j < n; ++j) {
      // sources of very different magnitudes, as block sums are
      value.push_back(random_tensor<T>({M, D}, gen, 0.1 * j, 1.0 + 2.0 * j));
      inv_rms.emplace_back(std::vector<index_t>{M});
      REQUIRE(ops::key_norm_stats(backend::reference{}, value.back().mat(), T(1e-6), inv_rms.back().data()) == -1);
    }
    for (index_t p = 0; p < S; ++p) {
      w.push_back(random_tensor<T>({D}, gen, 0.0, 0.5));
      g.push_back(random_tensor<T>({D}, gen, 1.0, 0.2));
    }
  }
  std::vector<ops::depth_source<T>> sources(index_t first = 0, index_t count = -1) const {
    if (count < 0) count = n - first;
    std::vector<ops::depth_source<T>> s;
    for (index_t j = first; j < first + count; ++j) s.push_back({value[j].mat(), inv_rms[j].data()});
    return s;
  }
  ops::depth_query<T> query(index_t p) const { return {w[p].data(), g[p].data()}; }
  // The largest source magnitude: h mixes sources, so float rounding in h is relative to it,
  // not to h's own (possibly cancelled) entries.
  double scale() const {
    double m = 0;
    for (const auto& v : value)
      for (T x : v) m = std::max(m, std::abs(static_cast<double>(x)));
    return m;
  }
};

template <class T>
using src_span = std::span<const ops::depth_source<T>>;

}  // namespace

TEST_CASE("depth attention: a hand-sized case with literal numbers", "[ops][depth_attention]") {
  // Two sources, one token, D = 2, w = (1, 0), g = (2, 1), ε = 0.
  // v0 = (3, 4): r0 = sqrt(12.5), s0 = 2·3/r0 = 1.6970563
  // v1 = (1, -1): r1 = 1,         s1 = 2·1/1 = 2
  // α = softmax(1.6970563, 2) = (0.4248380, 0.5751620)
  // h = α0 v0 + α1 v1 = (1.8496760, 1.1241901)
  tensor<double> v0({1, 2}), v1({1, 2}), r0({1}), r1({1}), h({1, 2}), alpha({2, 1});
  v0[0] = 3, v0[1] = 4, v1[0] = 1, v1[1] = -1;
  const double w[2] = {1, 0}, g[2] = {2, 1};
  ops::key_norm_stats(backend::reference{}, v0.mat(), 0.0, r0.data());
  ops::key_norm_stats(backend::reference{}, v1.mat(), 0.0, r1.data());
  std::vector<ops::depth_source<double>> src{{v0.mat(), r0.data()}, {v1.mat(), r1.data()}};
  ops::depth_attention_forward(backend::reference{}, src_span<double>(src), {w, g}, h.mat(), alpha.mat());
  CHECK(alpha[0] == Approx(0.4248380).epsilon(1e-6));
  CHECK(alpha[1] == Approx(0.5751620).epsilon(1e-6));
  CHECK(h[0] == Approx(1.8496760).epsilon(1e-6));
  CHECK(h[1] == Approx(1.1241901).epsilon(1e-6));
}

TEST_CASE("key_norm_stats: 1/RMS per token, and the first non-finite token", "[ops][depth_attention]") {
  tensor<float> v({3, 5});
  for (index_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i % 5) - 2.0f;  // rows (-2,-1,0,1,2): mean² = 2
  tensor<float> r({3});
  for (auto b : {0, 1}) {
    const index_t bad = b == 0 ? ops::key_norm_stats(backend::reference{}, v.mat(), 0.0f, r.data())
                             : ops::key_norm_stats(backend::cpu{}, v.mat(), 0.0f, r.data());
    CHECK(bad == -1);
    for (index_t t = 0; t < 3; ++t) CHECK(r[t] == Approx(1 / std::sqrt(2.0)).epsilon(1e-6));
  }
  v[7] = std::numeric_limits<float>::quiet_NaN();
  v[12] = std::numeric_limits<float>::infinity();
  CHECK(ops::key_norm_stats(backend::reference{}, v.mat(), 1e-6f, r.data()) == 1);
  CHECK(ops::key_norm_stats(backend::cpu{}, v.mat(), 1e-6f, r.data()) == 1);
  // the same from a sum: b = v + (−v except the bad entries) leaves NaN in row 1, Inf in row 2
  tensor<float> minus({3, 5}), sum({3, 5});
  for (index_t i = 0; i < v.size(); ++i) minus[i] = std::isfinite(v[i]) ? -v[i] : 1.0f;
  CHECK(ops::sum_key_norm_stats(backend::reference{}, v.mat(), minus.mat(), sum.mat(), 1e-6f, r.data()) == 1);
  CHECK(ops::sum_key_norm_stats(backend::cpu{}, v.mat(), minus.mat(), sum.mat(), 1e-6f, r.data()) == 1);
  CHECK(sum[0] == 0.0f);
  CHECK(std::isnan(sum[7]));
}

TEST_CASE("depth attention: cpu equals reference on awkward sizes", "[ops][depth_attention][cpu]") {
  // D not a multiple of the SIMD width, one token, one source, many sources.
  const auto M = GENERATE(index_t(1), index_t(3), index_t(37));
  const auto D = GENERATE(index_t(1), index_t(7), index_t(13), index_t(33));
  // n ≤ 9: the unrolled per-token kernels (one token: the AVX-512 ones where chosen); 17: the
  // general one (8-row passes, several batches)
  const auto n = GENERATE(index_t(1), index_t(2), index_t(6), index_t(8), index_t(9), index_t(17));
  // the build's kernels and, where the CPU has it, the AVX-512 row kernels (core/cpu_isa.hpp)
  const auto isa = GENERATE(attnres::cpu_isa::baseline, attnres::cpu_isa::avx512);
  CAPTURE(M, D, n, attnres::to_string(isa));
  if (!attnres::cpu_isa_supported(isa)) {
    WARN(attnres::to_string(isa) << " kernels cannot run on this CPU: not tested here");
    return;
  }
  const attnres::cpu_isa_scope use_isa(isa);
  const problem<float> pb(M, D, n, 5, 1000 + M * 100 + D * 10 + n);
  const auto src = pb.sources();
  const double tol = 1e-5, atol = 1e-6 * pb.scale();  // float, different summation order

  SECTION("key_norm_stats") {
    tensor<float> a({M}), b({M});
    ops::key_norm_stats(backend::reference{}, pb.value[n - 1].mat(), 1e-6f, a.data());
    ops::key_norm_stats(backend::cpu{}, pb.value[n - 1].mat(), 1e-6f, b.data());
    REQUIRE_CLOSE(a.data(), b.data(), M, 1e-5, 1e-7);
  }
  SECTION("a sum and its key-norm statistic in one op, also in place (out = a)") {
    const auto& a = pb.value[0];
    const auto& b = pb.value[n - 1];
    tensor<float> s1({M, D}), s2({M, D}), r1({M}), r2({M}), s3 = a, r3({M});
    CHECK(ops::sum_key_norm_stats(backend::reference{}, a.mat(), b.mat(), s1.mat(), 1e-6f, r1.data()) == -1);
    CHECK(ops::sum_key_norm_stats(backend::cpu{}, a.mat(), b.mat(), s2.mat(), 1e-6f, r2.data()) == -1);
    CHECK(ops::sum_key_norm_stats(backend::cpu{}, s3.mat(), b.mat(), s3.mat(), 1e-6f, r3.data()) == -1);
    REQUIRE(std::equal(s1.data(), s1.data() + s1.size(), s2.data()));  // one rounding per entry either way
    REQUIRE(std::equal(s1.data(), s1.data() + s1.size(), s3.data()));
    REQUIRE_CLOSE(r1.data(), r2.data(), M, 1e-5, 1e-7);
    REQUIRE_CLOSE(r1.data(), r3.data(), M, 1e-5, 1e-7);
  }
  SECTION("one-shot forward") {
    tensor<float> h1({M, D}), h2({M, D}), a1({n, M}), a2({n, M});
    ops::depth_attention_forward(backend::reference{}, src_span<float>(src), pb.query(0), h1.mat(), a1.mat());
    ops::depth_attention_forward(backend::cpu{}, src_span<float>(src), pb.query(0), h2.mat(), a2.mat());
    REQUIRE_CLOSE(h1.data(), h2.data(), h1.size(), tol, atol);
    REQUIRE_CLOSE(a1.data(), a2.data(), a1.size(), 1e-5, 1e-7);
  }
  SECTION("one-shot forward that takes the last source's statistic itself (decoding's partial sum)") {
    // sources 0..n-2 with their statistics, the last one as the partial: one token takes the
    // fused kernel (n ≤ 9), more tokens or n = 17 the statistic first
    const auto head = pb.sources(0, n - 1);
    const auto& part_v = pb.value[n - 1];
    tensor<float> h1({M, D}), h2({M, D}), h3({M, D}), a1({n, M}), a2({n, M}), a3({n, M}), r1({M}), r2({M});
    CHECK(ops::depth_attention_forward_normed(backend::reference{}, src_span<float>(head), part_v.mat(), 1e-6f, r1.data(),
                                              pb.query(0), h1.mat(), a1.mat()) == -1);
    CHECK(ops::depth_attention_forward_normed(backend::cpu{}, src_span<float>(head), part_v.mat(), 1e-6f, r2.data(),
                                              pb.query(0), h2.mat(), a2.mat()) == -1);
    REQUIRE_CLOSE(r1.data(), pb.inv_rms[n - 1].data(), M, 1e-5, 1e-7);
    REQUIRE_CLOSE(r2.data(), pb.inv_rms[n - 1].data(), M, 1e-5, 1e-7);
    // the same as the plain forward over all n sources with the statistic given
    ops::depth_attention_forward(backend::reference{}, src_span<float>(src), pb.query(0), h3.mat(), a3.mat());
    REQUIRE_CLOSE(h1.data(), h3.data(), h1.size(), tol, atol);
    REQUIRE_CLOSE(h2.data(), h3.data(), h1.size(), tol, atol);
    REQUIRE_CLOSE(a1.data(), a3.data(), a1.size(), 1e-5, 1e-7);
    REQUIRE_CLOSE(a2.data(), a3.data(), a1.size(), 1e-5, 1e-7);
    // a NaN or an Inf in the partial's last token is reported as that token
    for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
      tensor<float> bad_v = part_v;
      bad_v.mat()(M - 1, D / 2) = bad;
      CHECK(ops::depth_attention_forward_normed(backend::reference{}, src_span<float>(head), bad_v.mat(), 1e-6f,
                                                r1.data(), pb.query(0), h1.mat(), a1.mat()) == M - 1);
      CHECK(ops::depth_attention_forward_normed(backend::cpu{}, src_span<float>(head), bad_v.mat(), 1e-6f, r2.data(),
                                                pb.query(0), h2.mat(), a2.mat()) == M - 1);
    }
  }
  // Phase-1 statistics of the first S queries on the reference (b = 0) and cpu (b = 1)
  // backends, checked equal; the first point's normalised if asked (as Block's Phase 1 writes it).
  struct phase1_pair {
    std::vector<tensor<float>> o[2], m[2], l[2], lg[2];
    std::vector<ops::depth_stats<float>> st[2];
  };
  auto phase1_on_both = [&](index_t S, bool normalized_first, phase1_pair& r) {
    std::vector<ops::depth_query<float>> qs;
    for (index_t p = 0; p < S; ++p) qs.push_back(pb.query(p));
    for (int b = 0; b < 2; ++b) {
      for (index_t p = 0; p < S; ++p) {
        r.o[b].emplace_back(std::vector<index_t>{M, D});
        r.m[b].emplace_back(std::vector<index_t>{M});
        r.l[b].emplace_back(std::vector<index_t>{M});
        r.lg[b].emplace_back(std::vector<index_t>{n, M});
      }
      for (index_t p = 0; p < S; ++p)
        r.st[b].push_back({r.o[b][p].mat(), r.m[b][p].data(), r.l[b][p].data(), r.lg[b][p].mat(), normalized_first && p == 0});
    }
    ops::depth_attention_stats(backend::reference{}, src_span<float>(src), qs, r.st[0]);
    ops::depth_attention_stats(backend::cpu{}, src_span<float>(src), qs, r.st[1]);
    for (index_t p = 0; p < S; ++p) {
      CAPTURE(p);
      REQUIRE_CLOSE(r.o[0][p].data(), r.o[1][p].data(), M * D, tol, atol);
      REQUIRE_CLOSE(r.l[0][p].data(), r.l[1][p].data(), M, 1e-5, 1e-7);
      REQUIRE_CLOSE(r.lg[0][p].data(), r.lg[1][p].data(), n * M, tol, 1e-6);
      for (index_t t = 0; t < M; ++t) CHECK(r.m[0][p][t] == Approx(r.m[1][p][t]).epsilon(1e-5).margin(1e-6));
    }
  };

  SECTION("phase-1 statistics for 1, 2, 4 and 5 queries (the cpu loop's unrolled counts and the general one)") {
    for (const index_t S : {index_t(1), index_t(2), index_t(4), index_t(5)}) {
      CAPTURE(S);
      phase1_pair r;
      phase1_on_both(S, /*normalized_first=*/true, r);
    }
  }
  SECTION("phase-1 statistics and phase-2 merge") {
    phase1_pair r;
    phase1_on_both(3, /*normalized_first=*/false, r);
    const auto& st = r.st;
    const auto& o = r.o;
    const auto& m = r.m;
    const auto& l = r.l;
    const auto& lg = r.lg;
    // merge with a partial (the last source plays the partial) and without
    attnres::rng gen(7);
    const auto part_v = random_tensor<float>({M, D}, gen, 0.0, 3.0);
    tensor<float> part_r({M});
    ops::key_norm_stats(backend::reference{}, part_v.mat(), 1e-6f, part_r.data());
    const ops::depth_source<float> part{part_v.mat(), part_r.data()};
    for (bool with_partial : {false, true}) {
      const index_t rows = n + (with_partial ? 1 : 0);
      tensor<float> h1({M, D}), h2({M, D}), a1({rows, M}), a2({rows, M});
      ops::depth_attention_merge(backend::reference{}, st[0][1], with_partial ? &part : nullptr, pb.query(1),
                                 h1.mat(), a1.mat());
      ops::depth_attention_merge(backend::cpu{}, st[1][1], with_partial ? &part : nullptr, pb.query(1), h2.mat(),
                                 a2.mat());
      REQUIRE_CLOSE(h1.data(), h2.data(), h1.size(), tol, atol);
      REQUIRE_CLOSE(a1.data(), a2.data(), a1.size(), 1e-5, 1e-7);
    }
    // The merge that takes the partial's statistic itself equals key_norm_stats, then the merge.
    {
      const index_t rows = n + 1;
      tensor<float> h1({M, D}), h2({M, D}), a1({rows, M}), a2({rows, M}), r1({M}), r2({M});
      CHECK(ops::depth_attention_merge_normed(backend::reference{}, st[0][1], part_v.mat(), 1e-6f, r1.data(),
                                              pb.query(1), h1.mat(), a1.mat()) == -1);
      CHECK(ops::depth_attention_merge_normed(backend::cpu{}, st[1][1], part_v.mat(), 1e-6f, r2.data(), pb.query(1),
                                              h2.mat(), a2.mat()) == -1);
      REQUIRE_CLOSE(r1.data(), part_r.data(), M, 1e-5, 1e-7);
      REQUIRE_CLOSE(r2.data(), part_r.data(), M, 1e-5, 1e-7);
      tensor<float> h3({M, D}), a3({rows, M});
      ops::depth_attention_merge(backend::reference{}, st[0][1], &part, pb.query(1), h3.mat(), a3.mat());
      REQUIRE_CLOSE(h1.data(), h3.data(), h1.size(), tol, atol);
      REQUIRE_CLOSE(h2.data(), h3.data(), h1.size(), tol, atol);
      REQUIRE_CLOSE(a2.data(), a3.data(), a1.size(), 1e-5, 1e-7);
      // a NaN in the partial's last token is reported as that token
      tensor<float> bad_v = part_v;
      bad_v.mat()(M - 1, D - 1) = std::numeric_limits<float>::quiet_NaN();
      CHECK(ops::depth_attention_merge_normed(backend::reference{}, st[0][1], bad_v.mat(), 1e-6f, r1.data(),
                                              pb.query(1), h1.mat(), a1.mat()) == M - 1);
      CHECK(ops::depth_attention_merge_normed(backend::cpu{}, st[1][1], bad_v.mat(), 1e-6f, r2.data(), pb.query(1),
                                              h2.mat(), a2.mat()) == M - 1);
    }
    // Normalised statistics (depth_stats::normalized): o/ℓ, ℓ = 1, m + log ℓ of the plain
    // ones, on both backends; the merge gives the same h and α from them, also in place (h = o).
    for (int b = 0; b < 2; ++b) {
      tensor<float> on({M, D}), mn({M}), ln({M}), lgn({n, M});
      const std::vector<ops::depth_stats<float>> stn{{on.mat(), mn.data(), ln.data(), lgn.mat(), true}};
      const std::vector<ops::depth_query<float>> q1{pb.query(1)};
      if (b == 0)
        ops::depth_attention_stats(backend::reference{}, src_span<float>(src), q1, stn);
      else
        ops::depth_attention_stats(backend::cpu{}, src_span<float>(src), q1, stn);
      for (index_t t = 0; t < M; ++t) {
        CHECK(ln[t] == 1.0f);
        CHECK(mn[t] == Approx(m[b][1][t] + std::log(l[b][1][t])).epsilon(1e-5).margin(1e-6));
        for (index_t d = 0; d < D; ++d)
          CHECK(on.mat()(t, d) == Approx(o[b][1].mat()(t, d) / l[b][1][t]).epsilon(1e-5).margin(atol));
      }
      REQUIRE_CLOSE(lgn.data(), lg[b][1].data(), n * M, tol, 1e-6);
      for (bool with_partial : {false, true}) {
        const index_t rows = n + (with_partial ? 1 : 0);
        tensor<float> h1({M, D}), h2({M, D}), a1({rows, M}), a2({rows, M});
        auto merge = [&](const ops::depth_stats<float>& st_, attnres::matrix_view<float> h_, attnres::matrix_view<float> a_) {
          if (b == 0)
            ops::depth_attention_merge(backend::reference{}, st_, with_partial ? &part : nullptr, pb.query(1), h_, a_);
          else
            ops::depth_attention_merge(backend::cpu{}, st_, with_partial ? &part : nullptr, pb.query(1), h_, a_);
        };
        merge(st[b][1], h1.mat(), a1.mat());
        if (with_partial) {
          merge(stn[0], h2.mat(), a2.mat());
          REQUIRE_CLOSE(h1.data(), h2.data(), h1.size(), tol, atol);
        } else {
          tensor<float> o_copy = on;
          merge(stn[0], on.mat(), a2.mat());  // in place: h is the statistics' o
          REQUIRE(std::equal(on.data(), on.data() + on.size(), o_copy.data()));  // untouched
          REQUIRE_CLOSE(h1.data(), on.data(), h1.size(), tol, atol);
        }
        REQUIRE_CLOSE(a1.data(), a2.data(), a1.size(), 1e-5, 1e-7);
      }
    }
  }
  SECTION("backward, one and several gather points") {
    for (index_t S : {index_t(1), index_t(2), index_t(3), index_t(4), index_t(5)}) {
      attnres::rng gen(99 + S);
      std::vector<tensor<float>> alpha, h, dh, c;
      for (index_t p = 0; p < S; ++p) {
        alpha.emplace_back(std::vector<index_t>{n, M});
        h.emplace_back(std::vector<index_t>{M, D});
        ops::depth_attention_forward(backend::reference{}, src_span<float>(src), pb.query(p), h[p].mat(),
                                     alpha[p].mat());
        dh.push_back(random_tensor<float>({M, D}, gen));
        c.emplace_back(std::vector<index_t>{M});
        ops::row_dots(backend::reference{}, dh[p].mat(), h[p].mat(), c[p].data());
        tensor<float> c2({M});
        ops::row_dots(backend::cpu{}, dh[p].mat(), h[p].mat(), c2.data());
        REQUIRE_CLOSE(c[p].data(), c2.data(), M, tol, 10 * atol);
      }
      // The logits s_pj as Phase 1 keeps them (run 5 passes them to the cpu backward)
      std::vector<tensor<float>> logits;
      for (index_t p = 0; p < S; ++p) {
        tensor<float> o({M, D}), m({M}), l({M});
        logits.emplace_back(std::vector<index_t>{n, M});
        const std::vector<ops::depth_stats<float>> st{{o.mat(), m.data(), l.data(), logits[p].mat()}};
        const std::vector<ops::depth_query<float>> qs{pb.query(p)};
        ops::depth_attention_stats(backend::reference{}, src_span<float>(src), qs, st);
      }
      // Runs: 0 reference and 1 cpu accumulate onto the same non-zero values; 2 reference and 3
      // cpu overwrite a NaN-filled buffer (nothing of it may show); 4 reference accumulates onto 0;
      // 5 cpu accumulates like 1, given the logits; 6 likewise, given the logits of the even
      // points only (the others recompute theirs).
      std::vector<tensor<float>> initial, zeros, garbage;
      for (index_t j = 0; j < n; ++j) {
        initial.push_back(random_tensor<float>({M, D}, gen));
        zeros.emplace_back(std::vector<index_t>{M, D});
        garbage.emplace_back(std::vector<index_t>{M, D});
        garbage.back().fill(std::numeric_limits<float>::quiet_NaN());
      }
      // runs 1, 3, 5, 6 (cpu): with spans of 8 tokens (cpu_detail::backward_dh_bytes) at the
      // odd sizes, so several spans and a short last one are covered; 1 also at the default
      constexpr int runs = 8;
      std::vector<tensor<float>> dsrc[runs], dw[runs], dg[runs];
      for (int b = 0; b < runs; ++b) {
        std::vector<ops::depth_query_grad<float>> pts;
        std::vector<attnres::matrix_view<float>> dviews;
        dsrc[b] = b < 2 || b >= 5 ? initial : b < 4 ? garbage : zeros;  // 7: like 1
        for (index_t j = 0; j < n; ++j) dviews.push_back(dsrc[b][j].mat());
        for (index_t p = 0; p < S; ++p) {
          dw[b].emplace_back(std::vector<index_t>{D});
          dg[b].emplace_back(std::vector<index_t>{D});
          dw[b][p].fill(0.5f);
          dg[b][p].fill(-0.25f);
        }
        for (index_t p = 0; p < S; ++p)
          pts.push_back({pb.query(p), alpha[p].mat(), c[p].data(), dh[p].mat(), dw[b][p].data(), dg[b][p].data(),
                         b == 5 || (b == 6 && p % 2 == 0) ? logits[p].mat() : attnres::const_matrix_view<float>{}});
        const auto mode = b == 2 || b == 3 ? ops::grad_write::overwrite : ops::grad_write::accumulate;
        if (b % 2 == 0 && b < 6) {
          ops::depth_attention_backward(backend::reference{}, src_span<float>(src), pts, dviews, mode);
        } else {
          const index_t default_bytes = ops::cpu_detail::backward_dh_bytes;
          if (b != 7) ops::cpu_detail::backward_dh_bytes = S * D * index_t(sizeof(float)) * 8;
          ops::depth_attention_backward(backend::cpu{}, src_span<float>(src), pts, dviews, mode);
          ops::cpu_detail::backward_dh_bytes = default_bytes;
        }
      }
      for (index_t j = 0; j < n; ++j) {
        REQUIRE_CLOSE(dsrc[0][j].data(), dsrc[1][j].data(), M * D, 1e-4, 10 * atol);
        REQUIRE_CLOSE(dsrc[4][j].data(), dsrc[2][j].data(), M * D, 1e-6, 1e-7);
        REQUIRE_CLOSE(dsrc[4][j].data(), dsrc[3][j].data(), M * D, 1e-4, 10 * atol);
        REQUIRE_CLOSE(dsrc[0][j].data(), dsrc[5][j].data(), M * D, 1e-4, 10 * atol);
        REQUIRE_CLOSE(dsrc[0][j].data(), dsrc[6][j].data(), M * D, 1e-4, 10 * atol);
        REQUIRE_CLOSE(dsrc[0][j].data(), dsrc[7][j].data(), M * D, 1e-4, 10 * atol);
      }
      // dw, dg: sums over M tokens and n sources of magnitude up to scale(): cancellation leaves
      // entries small against their terms, so the absolute tolerance follows the sources'
      // magnitude. The cpu sums a tile of 8 tokens first, and run 5's logits come from Phase 1's
      // dot (another order than the kernel's): a few roundings more than the reference's order.
      for (int b = 1; b < runs; ++b)
        for (index_t p = 0; p < S; ++p) {
          REQUIRE_CLOSE(dw[0][p].data(), dw[b][p].data(), D, 1e-4, 4 * atol);
          REQUIRE_CLOSE(dg[0][p].data(), dg[b][p].data(), D, 1e-4, 4 * atol);
        }
    }
  }
}

template <class T>
void two_phase_matches_one_shot(index_t M, index_t D, index_t n, double rtol) {
  // Phase 1 over the first n-1 sources, Phase 2 merges the last as the partial: the result
  // must equal the one-shot softmax over all n sources.
  const problem<T> pb(M, D, n, 1, 7 + n);
  const auto all = pb.sources();
  const auto inter = pb.sources(0, n - 1);
  const ops::depth_source<T> part = all.back();
  auto run = [&](auto be) {
    tensor<T> h1({M, D}), a1({n, M}), h2({M, D}), a2({n, M}), o({M, D}), m({M}), l({M}), lg({n - 1, M});
    ops::depth_attention_forward(be, src_span<T>(all), pb.query(0), h1.mat(), a1.mat());
    const std::vector<ops::depth_stats<T>> st{{o.mat(), m.data(), l.data(), lg.mat()}};
    const std::vector<ops::depth_query<T>> qs{pb.query(0)};
    ops::depth_attention_stats(be, src_span<T>(inter), qs, st);
    ops::depth_attention_merge(be, st[0], &part, pb.query(0), h2.mat(), a2.mat());
    // relative to the sources' magnitude (h's own entries may be cancelled sums)
    REQUIRE_CLOSE(h1.data(), h2.data(), h1.size(), rtol, rtol * pb.scale());
    REQUIRE_CLOSE(a1.data(), a2.data(), a1.size(), rtol, rtol * 1e-2);
  };
  SECTION("reference") { run(backend::reference{}); }
  SECTION("cpu") {
    for (const auto isa : {attnres::cpu_isa::baseline, attnres::cpu_isa::avx512})
      if (attnres::cpu_isa_supported(isa)) {
        CAPTURE(attnres::to_string(isa));
        const attnres::cpu_isa_scope use_isa(isa);
        run(backend::cpu{});
      }
  }
}

TEST_CASE("two-phase equals the one-shot softmax", "[ops][depth_attention][invariant]") {
  const auto M = GENERATE(index_t(1), index_t(19));
  const auto D = GENERATE(index_t(5), index_t(64));
  const auto n = GENERATE(index_t(2), index_t(5), index_t(10));
  CAPTURE(M, D, n);
  // float: the two sides sum in different orders (and on an AVX-512 CPU the two-phase side runs
  // the 16-lane row kernels, the one-shot side the build's): ~16 ulp of the sources' magnitude
  SECTION("float: within 2e-6 relative") { two_phase_matches_one_shot<float>(M, D, n, 2e-6); }
  SECTION("double: exact up to rounding") { two_phase_matches_one_shot<double>(M, D, n, 1e-13); }
}
