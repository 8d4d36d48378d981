#pragma once
// bf16 — the bfloat16 storage format: the upper 16 bits of a float (its sign, all 8 exponent
// bits and the top 7 of its 23 mantissa bits). Same range as float, about 3 significant decimal
// digits. attnres keeps weights in it only for decoding (LM::start_decode with
// decode_weights::bf16): a decode step reads every weight once per token and little else, so
// half the bytes make it faster. Arithmetic stays in float: a bf16 widens to the float with the
// same upper bits and zeros below, exactly.
//
//   bf16(x)          x rounded to the nearest bf16, ties to even (IEEE's default rounding);
//                    NaN stays NaN (quiet), ±Inf stays ±Inf, a finite x beyond bf16's largest
//                    finite value (≈ 3.39e38) becomes ±Inf
//   float(b)         exact
//   to_bf16(src, dst, n)   n floats rounded; returns the index of the first one whose bf16 is
//                    not finite (NaN, Inf, or a float that rounded to Inf), or −1

#include <attnres/core/index.hpp>

#include <bit>
#include <cstdint>

namespace attnres {

struct bf16 {
  std::uint16_t bits = 0;

  constexpr bf16() = default;
  constexpr explicit bf16(float x) : bits(round(std::bit_cast<std::uint32_t>(x))) {}
  constexpr explicit operator float() const { return std::bit_cast<float>(static_cast<std::uint32_t>(bits) << 16); }
  static constexpr bf16 from_bits(std::uint16_t b) {
    bf16 r;
    r.bits = b;
    return r;
  }
  // exponent bits all ones: Inf or NaN
  constexpr bool finite() const { return (bits & 0x7F80u) != 0x7F80u; }
  friend constexpr bool operator==(bf16, bf16) = default;

 private:
  static constexpr std::uint16_t round(std::uint32_t u) {
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<std::uint16_t>((u >> 16) | 0x0040u);  // NaN: keep it, quiet
    // add just under half of the dropped part's unit, plus one when the kept part is odd: a tie
    // then carries only into an odd kept part (to even), and a carry out of the mantissa
    // correctly steps the exponent (up to Inf)
    const std::uint32_t odd = (u >> 16) & 1u;
    return static_cast<std::uint16_t>((u + 0x7FFFu + odd) >> 16);
  }
};
static_assert(sizeof(bf16) == 2, "bf16 must be two bytes: weights are stored as arrays of it");

inline index_t to_bf16(const float* src, bf16* dst, index_t n) {
  index_t first_bad = -1;
  for (index_t i = 0; i < n; ++i) {
    dst[i] = bf16(src[i]);
    if (first_bad < 0 && !dst[i].finite()) first_bad = i;
  }
  return first_bad;
}

}  // namespace attnres
