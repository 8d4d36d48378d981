// core/bf16 and core/simd_bf16: rounding to bf16 (ties to even, NaN, Inf, overflow) against
// hand-worked bit patterns and the exact widening back, and the bf16 matrix-vector kernel
// against a loop in double, on both instruction sets, with lengths around the 8- and 16-float
// registers and row counts around its 4-row passes.

#include "test_util.hpp"

#include <attnres/core/bf16.hpp>
#include <attnres/core/simd_bf16.hpp>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

using namespace attnres_test;
using attnres::bf16;

namespace {
float from_bits(std::uint32_t u) { return std::bit_cast<float>(u); }
std::uint16_t rounded_bits(std::uint32_t u) { return bf16(from_bits(u)).bits; }
}  // namespace

TEST_CASE("bf16 rounds to the nearest value, ties to even", "[core][bf16]") {
  // 1.0 = 0x3F800000; the kept part is the upper 16 bits, the dropped part the lower 16
  CHECK(rounded_bits(0x3F800000u) == 0x3F80u);  // exact
  CHECK(rounded_bits(0x3F807FFFu) == 0x3F80u);  // just under half a unit: down
  CHECK(rounded_bits(0x3F808001u) == 0x3F81u);  // just over: up
  CHECK(rounded_bits(0x3F808000u) == 0x3F80u);  // a tie, kept part even: stays
  CHECK(rounded_bits(0x3F818000u) == 0x3F82u);  // a tie, kept part odd: up to even
  CHECK(rounded_bits(0xBF818000u) == 0xBF82u);  // the same for negatives (sign-magnitude)
  CHECK(rounded_bits(0x3FFFFFFFu) == 0x4000u);  // a carry out of the mantissa steps the exponent
  CHECK(rounded_bits(0x00000000u) == 0x0000u);
  CHECK(rounded_bits(0x80000000u) == 0x8000u);  // −0 keeps its sign
  CHECK(rounded_bits(0x00018000u) == 0x0002u);  // subnormals round the same way
  CHECK(static_cast<float>(bf16(1.0f)) == 1.0f);
  CHECK(static_cast<float>(bf16(-2.5f)) == -2.5f);
  CHECK(static_cast<float>(bf16(0.1f)) == from_bits(0x3DCD0000u));  // 0.1 = 0x3DCCCCCD rounds up
}

TEST_CASE("bf16 keeps NaN and Inf, and overflows to Inf past its largest value", "[core][bf16]") {
  const float inf = std::numeric_limits<float>::infinity();
  CHECK(rounded_bits(std::bit_cast<std::uint32_t>(inf)) == 0x7F80u);
  CHECK(rounded_bits(std::bit_cast<std::uint32_t>(-inf)) == 0xFF80u);
  // a signalling NaN whose payload sits only in the dropped bits must not become Inf
  const bf16 snan(from_bits(0x7F800001u));
  CHECK(std::isnan(static_cast<float>(snan)));
  CHECK(!snan.finite());
  CHECK(std::isnan(static_cast<float>(bf16(std::numeric_limits<float>::quiet_NaN()))));
  // bf16's largest finite value is 0x7F7F (≈ 3.3895e38); the float halfway to the next one
  // (0x7F7F8000, a tie with an odd kept part) and everything above rounds to Inf
  CHECK(rounded_bits(0x7F7F7FFFu) == 0x7F7Fu);
  CHECK(rounded_bits(0x7F7F8000u) == 0x7F80u);
  CHECK(!bf16(std::numeric_limits<float>::max()).finite());
  CHECK(bf16(3.38e38f).finite());
}

TEST_CASE("every bf16 widens to a float that rounds back to it", "[core][bf16]") {
  index_t checked = 0;
  for (std::uint32_t b = 0; b <= 0xFFFFu; ++b) {
    const bf16 x = bf16::from_bits(static_cast<std::uint16_t>(b));
    const float f = static_cast<float>(x);
    REQUIRE(std::bit_cast<std::uint32_t>(f) == b << 16);  // widening is exact: zeros below
    if (std::isnan(f)) continue;                           // NaNs come back quiet
    REQUIRE(bf16(f) == x);
    ++checked;
  }
  CHECK(checked == 65536 - 2 * 127);  // all but the NaNs (exponent all ones, mantissa ≠ 0)
}

TEST_CASE("to_bf16 rounds a row and reports its first non-finite value", "[core][bf16]") {
  std::vector<float> src{1.0f, 0.1f, -3.0f, 7.0e-39f};
  std::vector<bf16> dst(src.size());
  CHECK(attnres::to_bf16(src.data(), dst.data(), 4) == -1);
  for (std::size_t i = 0; i < src.size(); ++i) CHECK(dst[i] == bf16(src[i]));
  src[2] = std::numeric_limits<float>::max();  // rounds to Inf
  src[3] = std::numeric_limits<float>::quiet_NaN();
  CHECK(attnres::to_bf16(src.data(), dst.data(), 4) == 2);
  CHECK(attnres::to_bf16(src.data(), dst.data(), 0) == -1);
}

TEST_CASE("simd::dots_with over bf16 rows equals the plain dot products", "[core][simd][bf16]") {
  const auto isa = GENERATE(attnres::cpu_isa::baseline, attnres::cpu_isa::avx512);
  const auto m = GENERATE(index_t(1), index_t(2), index_t(3), index_t(4), index_t(5), index_t(7), index_t(9));
  const auto n = GENERATE(index_t(0), index_t(1), index_t(7), index_t(8), index_t(15), index_t(16), index_t(17),
                          index_t(33), index_t(257));
  CAPTURE(attnres::to_string(isa), m, n);
  if (!attnres::cpu_isa_supported(isa)) {
    WARN(attnres::to_string(isa) << " kernels cannot run on this CPU: not tested here");
    return;
  }
  const attnres::cpu_isa_scope use_isa(isa);
  attnres::rng gen(static_cast<std::uint64_t>(31 * m + n + 1));
  const auto v = random_tensor<float>({n + 1}, gen);  // +1: no zero-size tensors
  const auto w = random_tensor<float>({m, n + 1}, gen);
  std::vector<bf16> q(static_cast<std::size_t>(m * n));
  for (index_t k = 0; k < m; ++k) attnres::to_bf16(w.data() + k * (n + 1), q.data() + k * n, n);
  std::vector<const bf16*> rows;
  for (index_t k = 0; k < m; ++k) rows.push_back(q.data() + k * n);
  std::vector<float> out(static_cast<std::size_t>(m), 123.0f);  // overwritten
  attnres::simd::dots_with(v.data(), rows.data(), m, n, out.data());
  std::vector<double> want(static_cast<std::size_t>(m), 0.0);
  for (index_t k = 0; k < m; ++k)
    for (index_t d = 0; d < n; ++d) want[k] += static_cast<double>(v[d]) * static_cast<float>(q[k * n + d]);
  if (n == 0) {
    for (float o : out) CHECK(o == 0.0f);
    return;
  }
  // the bf16 values exactly (the loop in double uses them too): only float summation differs
  REQUIRE_CLOSE(out.data(), want.data(), m, 1e-5, 1e-5 * std::sqrt(static_cast<double>(n)));
}
