// core/simd: the multi-row kernels against plain loops in double, on row counts that cross
// their pass sizes (4 products per read in dots_with, 8 rows per pass in weighted_sum, one SIMD
// batch in softmax_padded) and lengths that are not a multiple of the SIMD width.

#include "test_util.hpp"

#include <attnres/core/simd.hpp>
#include <attnres/core/simd_avx512.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

using namespace attnres_test;
namespace simd = attnres::simd;

TEST_CASE("simd::weighted_sum equals the plain sum over rows", "[core][simd]") {
  const auto m = GENERATE(index_t(1), index_t(3), index_t(5), index_t(8), index_t(9), index_t(16), index_t(17), index_t(27));
  const auto n = GENERATE(index_t(1), index_t(7), index_t(33), index_t(256));
  CAPTURE(m, n);
  attnres::rng gen(static_cast<std::uint64_t>(100 * m + n));
  const auto x = random_tensor<float>({m, n}, gen);
  const auto w = random_tensor<float>({m}, gen);
  std::vector<const float*> rows;
  for (index_t k = 0; k < m; ++k) rows.push_back(x.data() + k * n);
  std::vector<float> out(static_cast<std::size_t>(n), 123.0f);  // overwritten, not accumulated into
  simd::weighted_sum(rows.data(), w.data(), m, n, out.data());
  std::vector<double> want(static_cast<std::size_t>(n), 0.0);
  for (index_t k = 0; k < m; ++k)
    for (index_t d = 0; d < n; ++d) want[d] += static_cast<double>(w[k]) * x.data()[k * n + d];
  REQUIRE_CLOSE(out.data(), want.data(), n, 1e-5, 1e-5 * static_cast<double>(m));
}

TEST_CASE("simd::dots_with equals the plain dot products", "[core][simd]") {
  const auto m = GENERATE(index_t(1), index_t(2), index_t(3), index_t(4), index_t(7), index_t(9));
  const auto n = GENERATE(index_t(1), index_t(9), index_t(40));
  CAPTURE(m, n);
  attnres::rng gen(static_cast<std::uint64_t>(7 * m + n));
  const auto v = random_tensor<float>({n}, gen);
  const auto q = random_tensor<float>({m, n}, gen);
  std::vector<const float*> rows;
  for (index_t k = 0; k < m; ++k) rows.push_back(q.data() + k * n);
  std::vector<float> out(static_cast<std::size_t>(m));
  simd::dots_with(v.data(), rows.data(), m, n, out.data());
  std::vector<double> want(static_cast<std::size_t>(m), 0.0);
  for (index_t k = 0; k < m; ++k)
    for (index_t d = 0; d < n; ++d) want[k] += static_cast<double>(v[d]) * q.data()[k * n + d];
  REQUIRE_CLOSE(out.data(), want.data(), m, 1e-5, 1e-5 * std::sqrt(static_cast<double>(n)));
}

namespace {
template <class T>
void softmax_matches_exp(index_t n, double spread, double rtol) {
  attnres::rng gen(static_cast<std::uint64_t>(n));
  const auto logits = random_tensor<T>({n}, gen, 3.0, spread);
  std::vector<T> a(static_cast<std::size_t>(simd::padded<T>(n)), T(42));  // padding: any value
  std::copy(logits.data(), logits.data() + n, a.begin());
  simd::softmax_padded(a.data(), n);
  double m = -INFINITY, z = 0;
  for (index_t j = 0; j < n; ++j) m = std::max(m, static_cast<double>(logits[j]));
  std::vector<double> want(static_cast<std::size_t>(n));
  for (index_t j = 0; j < n; ++j) z += (want[j] = std::exp(static_cast<double>(logits[j]) - m));
  for (auto& e : want) e /= z;
  // Relative to the largest weight (1/n or more): what is below the smallest normal may be 0.
  REQUIRE_CLOSE(a.data(), want.data(), n, rtol, 4 * static_cast<double>(std::numeric_limits<T>::min()));
  double sum = 0;
  for (index_t j = 0; j < n; ++j) sum += static_cast<double>(a[j]);
  REQUIRE(std::abs(sum - 1.0) < 10 * static_cast<double>(std::numeric_limits<T>::epsilon()) * static_cast<double>(n));
}
}  // namespace

TEST_CASE("simd::softmax_padded equals softmax with std::exp", "[core][simd]") {
  const auto n = GENERATE(index_t(1), index_t(2), index_t(5), index_t(8), index_t(9), index_t(17));
  CAPTURE(n);
  SECTION("float, logits of spread 1") { softmax_matches_exp<float>(n, 1.0, 1e-6); }
  SECTION("float, logits spread wide enough that some weights underflow") { softmax_matches_exp<float>(n, 60.0, 1e-5); }
  SECTION("double") { softmax_matches_exp<double>(n, 5.0, 1e-14); }
}

// ---- the AVX-512 row kernels (core/simd_avx512.hpp) ------------------------------------------
// The same contracts against the same plain loops, on lengths around their 16-float registers
// and masked tails and row counts around their 4-product and 12-row passes. They run only where
// the CPU has AVX-512; elsewhere the case says so and checks nothing.

TEST_CASE("simd::avx512 kernels equal the plain loops", "[core][simd][avx512]") {
#if ATTNRES_HAVE_AVX512_KERNELS
  if (!attnres::cpu_isa_supported(attnres::cpu_isa::avx512)) {
    WARN("this CPU has no AVX-512: its kernels are not run here");
    return;
  }
  namespace s512 = attnres::simd::avx512;
  const auto m = GENERATE(index_t(1), index_t(2), index_t(3), index_t(4), index_t(5), index_t(11), index_t(12),
                          index_t(13), index_t(25));
  const auto n = GENERATE(index_t(1), index_t(15), index_t(16), index_t(17), index_t(47), index_t(129), index_t(256));
  CAPTURE(m, n);
  attnres::rng gen(static_cast<std::uint64_t>(31 * m + n));
  const auto x = random_tensor<float>({m, n}, gen);
  const auto w = random_tensor<float>({m}, gen);
  const auto v = random_tensor<float>({n}, gen);
  const auto start = random_tensor<float>({n}, gen);
  std::vector<const float*> rows;
  for (index_t k = 0; k < m; ++k) rows.push_back(x.data() + k * n);
  std::vector<double> sum(static_cast<std::size_t>(n), 0.0), dots(static_cast<std::size_t>(m), 0.0);
  for (index_t k = 0; k < m; ++k)
    for (index_t d = 0; d < n; ++d) {
      sum[d] += static_cast<double>(w[k]) * x.data()[k * n + d];
      dots[k] += static_cast<double>(v[d]) * x.data()[k * n + d];
    }
  const double sum_tol = 1e-5 * static_cast<double>(m), dot_tol = 1e-5 * std::sqrt(static_cast<double>(n));

  // one float past the end of out: a masked store must leave it alone
  std::vector<float> out(static_cast<std::size_t>(n + 1), 123.0f);
  s512::weighted_sum(rows.data(), w.data(), m, n, out.data());  // overwrites
  REQUIRE_CLOSE(out.data(), sum.data(), n, 1e-5, sum_tol);
  REQUIRE(out[n] == 123.0f);

  std::copy(start.data(), start.data() + n, out.begin());
  s512::add_weighted_sum(rows.data(), w.data(), m, n, out.data());  // accumulates
  std::vector<double> want(sum);
  for (index_t d = 0; d < n; ++d) want[d] += static_cast<double>(start[d]);
  REQUIRE_CLOSE(out.data(), want.data(), n, 1e-5, sum_tol);
  REQUIRE(out[n] == 123.0f);

  std::vector<float> got(static_cast<std::size_t>(m));
  s512::dots_with(v.data(), rows.data(), m, n, got.data());
  REQUIRE_CLOSE(got.data(), dots.data(), m, 1e-5, dot_tol);
  const double d0 = static_cast<double>(s512::dot(v.data(), rows[0], n));
  REQUIRE(std::abs(d0 - dots[0]) <= 1e-5 * std::abs(dots[0]) + dot_tol);

  // the query folded on the way, (w ⊙ g)·x_k (decoding's logits): w = v, g = start
  {
    std::vector<double> folded(static_cast<std::size_t>(m), 0.0);
    for (index_t k = 0; k < m; ++k)
      for (index_t d = 0; d < n; ++d) folded[k] += static_cast<double>(v[d]) * start[d] * x.data()[k * n + d];
    std::vector<float> got_f(static_cast<std::size_t>(m));
    s512::folded_dots(v.data(), start.data(), rows.data(), m, n, got_f.data());
    REQUIRE_CLOSE(got_f.data(), folded.data(), m, 1e-5, 2 * dot_tol);
  }

  // the same m products for a second row at once (the backward's pairs of sources)
  const auto v2 = random_tensor<float>({n}, gen);
  std::vector<double> dots2(static_cast<std::size_t>(m), 0.0);
  for (index_t k = 0; k < m; ++k)
    for (index_t d = 0; d < n; ++d) dots2[k] += static_cast<double>(v2[d]) * x.data()[k * n + d];
  std::vector<float> got2(static_cast<std::size_t>(m));
  s512::dots_with_pair(v.data(), v2.data(), rows.data(), m, n, got.data(), got2.data());
  REQUIRE_CLOSE(got.data(), dots.data(), m, 1e-5, dot_tol);
  REQUIRE_CLOSE(got2.data(), dots2.data(), m, 1e-5, dot_tol);

  // S weighted sums of the same rows in one pass (Phase 1's queries): S = m, weights S × m
  {
    const index_t S = m;
    const auto ws = random_tensor<float>({S, m}, gen);
    std::vector<std::vector<float>> outs(static_cast<std::size_t>(S), std::vector<float>(static_cast<std::size_t>(n + 1), 123.0f));
    std::vector<float*> out_rows;
    for (auto& o : outs) out_rows.push_back(o.data());
    s512::weighted_sums(rows.data(), ws.data(), m, S, n, out_rows.data());
    for (index_t p = 0; p < S; ++p) {
      std::vector<double> want_p(static_cast<std::size_t>(n), 0.0);
      for (index_t k = 0; k < m; ++k)
        for (index_t d = 0; d < n; ++d) want_p[d] += static_cast<double>(ws[p * m + k]) * x.data()[k * n + d];
      CAPTURE(p);
      REQUIRE_CLOSE(outs[p].data(), want_p.data(), n, 1e-5, sum_tol);
      REQUIRE(outs[p][n] == 123.0f);
    }
  }

  // the backward's row update for two rows, S = m points (passes of up to 5), written or added:
  //   dv_r (=|+=) kv_r·v_r + Σ_p (α_rp·dh_p + k_rp·q_p),  dh_p = x_p, q_p = x_{m-1-p}
  for (const bool overwrite : {false, true}) {
    const index_t S = m;
    const auto coef = random_tensor<float>({4, S}, gen);  // α_0, k_0, α_1, k_1
    std::vector<const float*> q_rows(rows.rbegin(), rows.rend());
    const float kv0 = 0.37f, kv1 = -1.21f;
    std::vector<float> dv0(static_cast<std::size_t>(n + 1), 123.0f), dv1(dv0);
    std::copy(start.data(), start.data() + n, dv0.begin());
    std::copy(v2.data(), v2.data() + n, dv1.begin());
    std::vector<double> want0(static_cast<std::size_t>(n)), want1(want0);
    for (index_t d = 0; d < n; ++d) {
      double s0 = (overwrite ? 0.0 : static_cast<double>(start[d])) + static_cast<double>(kv0) * v[d];
      double s1 = (overwrite ? 0.0 : static_cast<double>(v2[d])) + static_cast<double>(kv1) * v2[d];
      for (index_t p = 0; p < S; ++p) {
        s0 += static_cast<double>(coef[0 * S + p]) * rows[p][d] + static_cast<double>(coef[1 * S + p]) * q_rows[p][d];
        s1 += static_cast<double>(coef[2 * S + p]) * rows[p][d] + static_cast<double>(coef[3 * S + p]) * q_rows[p][d];
      }
      want0[d] = s0, want1[d] = s1;
    }
    const float* ahead[] = {x.data(), w.data()};  // rows to request on the way: no effect on the result
    if (overwrite)
      s512::row_update_pair<true>(S, rows.data(), q_rows.data(), coef.data(), coef.data() + S, kv0, v.data(), dv0.data(),
                                  coef.data() + 2 * S, coef.data() + 3 * S, kv1, v2.data(), dv1.data(), n, ahead, 1);
    else
      s512::row_update_pair<false>(S, rows.data(), q_rows.data(), coef.data(), coef.data() + S, kv0, v.data(), dv0.data(),
                                   coef.data() + 2 * S, coef.data() + 3 * S, kv1, v2.data(), dv1.data(), n);
    CAPTURE(overwrite);
    REQUIRE_CLOSE(dv0.data(), want0.data(), n, 1e-5, 4 * sum_tol);
    REQUIRE_CLOSE(dv1.data(), want1.data(), n, 1e-5, 4 * sum_tol);
    REQUIRE(dv0[n] == 123.0f);
    REQUIRE(dv1[n] == 123.0f);
  }
#else
  WARN("this build has no AVX-512 kernels (not GCC/Clang on x86-64, or ATTNRES_NO_AVX512_KERNELS)");
#endif
}
