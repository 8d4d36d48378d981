// The depth-attention row math of the CUDA kernels (ops/cuda/row/depth_attention.hpp), run on the
// CPU over every token exactly as the kernels run it over threads, against the reference op.
// No GPU is needed: this is the proof that the kernels' arithmetic is right.

#include "test_util.hpp"

#include <attnres/ops/cuda/row/depth_attention.hpp>
#include <attnres/ops/depth_attention.hpp>

#include <vector>

using namespace attnres_test;
namespace ops = attnres::ops;
namespace row = attnres::ops::row;
namespace backend = attnres::backend;
using attnres::tensor;

namespace {

// n sources of very different magnitudes (as block sums are) and S gather points, random w, g.
struct problem {
  index_t M, D, n, S;
  std::vector<tensor<float>> value, inv_rms, w, g;
  problem(index_t M_, index_t D_, index_t n_, index_t S_, std::uint64_t seed) : M(M_), D(D_), n(n_), S(S_) {
    attnres::rng gen(seed);
    for (index_t j = 0; j < n; ++j) {
      value.push_back(random_tensor<float>({M, D}, gen, 0.1 * j, 1.0 + 2.0 * j));
      inv_rms.emplace_back(std::vector<index_t>{M});
      ops::key_norm_stats(backend::reference{}, value.back().mat(), 1e-6f, inv_rms.back().data());
    }
    for (index_t p = 0; p < S; ++p) {
      w.push_back(random_tensor<float>({D}, gen, 0.0, 0.5));
      g.push_back(random_tensor<float>({D}, gen, 1.0, 0.2));
    }
  }
  std::vector<ops::depth_source<float>> sources() const {
    std::vector<ops::depth_source<float>> s;
    for (index_t j = 0; j < n; ++j) s.push_back({value[j].mat(), inv_rms[j].data()});
    return s;
  }
  std::vector<row::source_rows<float>> rows() const {
    std::vector<row::source_rows<float>> s;
    for (index_t j = 0; j < n; ++j) s.push_back({value[j].data(), D, inv_rms[j].data()});
    return s;
  }
  ops::depth_query<float> query(index_t p) const { return {w[p].data(), g[p].data()}; }
  double scale() const {
    double m = 0;
    for (const auto& v : value)
      for (float x : v) m = std::max(m, std::abs(static_cast<double>(x)));
    return m;
  }
};

using src_span = std::span<const ops::depth_source<float>>;

}  // namespace

TEST_CASE("cuda row math: key-norm statistic and logit equal the reference", "[cuda][row][depth_attention]") {
  const auto D = GENERATE(index_t(1), index_t(7), index_t(13), index_t(33));
  CAPTURE(D);
  const problem pb(5, D, 1, 1, 11 + D);
  tensor<float> r({5});
  for (index_t t = 0; t < 5; ++t) r[t] = row::key_norm_inv_rms(pb.value[0].mat().row(t), D, 1e-6f);
  REQUIRE_CLOSE(r.data(), pb.inv_rms[0].data(), 5, 1e-6, 0.0);
}

TEST_CASE("cuda row math: depth attention equals the reference on awkward sizes", "[cuda][row][depth_attention]") {
  const auto M = GENERATE(index_t(1), index_t(3), index_t(37));
  const auto D = GENERATE(index_t(1), index_t(7), index_t(13), index_t(33));
  const auto n = GENERATE(index_t(1), index_t(2), index_t(6));
  CAPTURE(M, D, n);
  const problem pb(M, D, n, 3, 2000 + M * 100 + D * 10 + n);
  const auto src = pb.sources();
  const auto rows = pb.rows();
  const double tol = 1e-5, atol = 1e-6 * pb.scale();

  SECTION("one-shot forward with the online softmax") {
    tensor<float> h1({M, D}), h2({M, D}), a1({n, M}), a2({n, M});
    ops::depth_attention_forward(backend::reference{}, src_span(src), pb.query(0), h1.mat(), a1.mat());
    for (index_t t = 0; t < M; ++t)
      row::depth_forward_token(rows.data(), n, t, pb.w[0].data(), pb.g[0].data(), D, h2.mat().row(t), a2.data(), M);
    REQUIRE_CLOSE(h1.data(), h2.data(), h1.size(), tol, atol);
    REQUIRE_CLOSE(a1.data(), a2.data(), a1.size(), 1e-5, 1e-7);
  }
  SECTION("two-phase: phase-1 statistics, then the merge with and without a partial") {
    tensor<float> o1({M, D}), o2({M, D}), m1({M}), m2({M}), l1({M}), l2({M}), lg1({n, M}), lg2({n, M});
    const std::vector<ops::depth_stats<float>> st{{o1.mat(), m1.data(), l1.data(), lg1.mat()}};
    const std::vector<ops::depth_query<float>> qs{pb.query(1)};
    ops::depth_attention_stats(backend::reference{}, src_span(src), qs, st);
    for (index_t t = 0; t < M; ++t)
      row::depth_stats_token(rows.data(), n, t, pb.w[1].data(), pb.g[1].data(), D, o2.mat().row(t), &m2[t], &l2[t],
                             lg2.data(), M);
    REQUIRE_CLOSE(o1.data(), o2.data(), o1.size(), tol, atol);
    REQUIRE_CLOSE(l1.data(), l2.data(), M, 1e-5, 1e-7);
    REQUIRE_CLOSE(lg1.data(), lg2.data(), lg1.size(), tol, 1e-6);
    for (index_t t = 0; t < M; ++t) CHECK(m1[t] == Approx(m2[t]).epsilon(1e-5).margin(1e-6));
    // normalised (depth_stats::normalized): o/ℓ, ℓ = 1, m + log ℓ
    {
      tensor<float> on({M, D}), mn({M}), ln({M}), lgn({n, M});
      for (index_t t = 0; t < M; ++t)
        row::depth_stats_token(rows.data(), n, t, pb.w[1].data(), pb.g[1].data(), D, on.mat().row(t), &mn[t], &ln[t],
                               lgn.data(), M, true);
      for (index_t t = 0; t < M; ++t) {
        CHECK(ln[t] == 1.0f);
        CHECK(mn[t] == Approx(m2[t] + std::log(l2[t])).epsilon(1e-5).margin(1e-6));
        for (index_t d = 0; d < D; ++d) CHECK(on.mat()(t, d) == Approx(o2.mat()(t, d) / l2[t]).epsilon(1e-5).margin(atol));
      }
    }

    attnres::rng gen(7);
    const auto part_v = random_tensor<float>({M, D}, gen, 0.0, 3.0);
    tensor<float> part_r({M});
    ops::key_norm_stats(backend::reference{}, part_v.mat(), 1e-6f, part_r.data());
    const ops::depth_source<float> part{part_v.mat(), part_r.data()};
    const row::source_rows<float> part_rows{part_v.data(), D, part_r.data()};
    for (bool with_partial : {false, true}) {
      const index_t na = n + (with_partial ? 1 : 0);
      tensor<float> h1({M, D}), h2({M, D}), a1({na, M}), a2({na, M});
      ops::depth_attention_merge(backend::reference{}, st[0], with_partial ? &part : nullptr, pb.query(1), h1.mat(),
                                 a1.mat());
      for (index_t t = 0; t < M; ++t)
        row::depth_merge_token(o2.mat().row(t), m2[t], l2[t], lg2.data(), M, n, with_partial ? &part_rows : nullptr, t,
                               pb.w[1].data(), pb.g[1].data(), D, h2.mat().row(t), a2.data(), M);
      REQUIRE_CLOSE(h1.data(), h2.data(), h1.size(), tol, atol);
      REQUIRE_CLOSE(a1.data(), a2.data(), a1.size(), 1e-5, 1e-7);
    }
  }
  SECTION("backward: token pass then channel pass, one and several gather points") {
    for (index_t S : {index_t(1), index_t(3)}) {
      attnres::rng gen(99 + S);
      std::vector<tensor<float>> alpha, h, dh, c;
      for (index_t p = 0; p < S; ++p) {
        alpha.emplace_back(std::vector<index_t>{n, M});
        h.emplace_back(std::vector<index_t>{M, D});
        ops::depth_attention_forward(backend::reference{}, src_span(src), pb.query(p), h[p].mat(), alpha[p].mat());
        dh.push_back(random_tensor<float>({M, D}, gen));
        c.emplace_back(std::vector<index_t>{M});
        ops::row_dots(backend::reference{}, dh[p].mat(), h[p].mat(), c[p].data());
      }
      // the op accumulates: both paths start from the same non-zero values
      std::vector<tensor<float>> initial;
      for (index_t j = 0; j < n; ++j) initial.push_back(random_tensor<float>({M, D}, gen));
      std::vector<tensor<float>> dsrc[2], dw[2], dg[2];
      for (int b = 0; b < 2; ++b) {
        dsrc[b] = initial;
        for (index_t p = 0; p < S; ++p) {
          dw[b].emplace_back(std::vector<index_t>{D});
          dg[b].emplace_back(std::vector<index_t>{D});
          dw[b][p].fill(0.5f);
          dg[b][p].fill(-0.25f);
        }
      }
      {
        std::vector<ops::depth_query_grad<float>> pts;
        std::vector<attnres::matrix_view<float>> dviews;
        for (index_t j = 0; j < n; ++j) dviews.push_back(dsrc[0][j].mat());
        for (index_t p = 0; p < S; ++p)
          pts.push_back({pb.query(p), alpha[p].mat(), c[p].data(), dh[p].mat(), dw[0][p].data(), dg[0][p].data()});
        ops::depth_attention_backward(backend::reference{}, src_span(src), pts, dviews);
      }
      std::vector<tensor<float>> dS;
      std::vector<row::point_grad_rows<float>> pts;
      std::vector<row::dsource_rows<float>> drows;
      for (index_t j = 0; j < n; ++j) drows.push_back({dsrc[1][j].data(), D});
      for (index_t p = 0; p < S; ++p) dS.emplace_back(std::vector<index_t>{n, M});
      for (index_t p = 0; p < S; ++p)
        pts.push_back({pb.w[p].data(), pb.g[p].data(), alpha[p].data(), M, c[p].data(), dh[p].data(), D, dS[p].data(),
                       M, dw[1][p].data(), dg[1][p].data()});
      for (index_t t = 0; t < M; ++t) row::depth_backward_token(rows.data(), n, pts.data(), S, t, D, drows.data());
      for (index_t p = 0; p < S; ++p)
        for (index_t d = 0; d < D; ++d) row::depth_backward_channel(rows.data(), n, pts[p], M, d);
      for (index_t j = 0; j < n; ++j) REQUIRE_CLOSE(dsrc[0][j].data(), dsrc[1][j].data(), M * D, 1e-4, 10 * atol);
      for (index_t p = 0; p < S; ++p) {
        REQUIRE_CLOSE(dw[0][p].data(), dw[1][p].data(), D, 1e-4, 1e-5);
        REQUIRE_CLOSE(dg[0][p].data(), dg[1][p].data(), D, 1e-4, 1e-5);
      }
    }
  }
}

TEST_CASE("cuda row math: two-phase equals the one-shot softmax", "[cuda][row][depth_attention][invariant]") {
  const auto M = GENERATE(index_t(1), index_t(19));
  const auto n = GENERATE(index_t(2), index_t(5), index_t(10));
  const index_t D = 33;
  CAPTURE(M, n);
  const problem pb(M, D, n, 1, 5 + n);
  const auto rows = pb.rows();
  tensor<float> h1({M, D}), a1({n, M}), h2({M, D}), a2({n, M}), o({M, D}), m({M}), l({M}), lg({n - 1, M});
  for (index_t t = 0; t < M; ++t) {
    row::depth_forward_token(rows.data(), n, t, pb.w[0].data(), pb.g[0].data(), D, h1.mat().row(t), a1.data(), M);
    row::depth_stats_token(rows.data(), n - 1, t, pb.w[0].data(), pb.g[0].data(), D, o.mat().row(t), &m[t], &l[t],
                           lg.data(), M);
    row::depth_merge_token(o.mat().row(t), m[t], l[t], lg.data(), M, n - 1, &rows[n - 1], t, pb.w[0].data(),
                           pb.g[0].data(), D, h2.mat().row(t), a2.data(), M);
  }
  REQUIRE_CLOSE(h1.data(), h2.data(), h1.size(), 1e-6, 1e-6 * pb.scale());
  REQUIRE_CLOSE(a1.data(), a2.data(), a1.size(), 1e-6, 1e-8);
}
