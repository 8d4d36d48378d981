#pragma once
// A small, portable random number generator. std::normal_distribution differs between
// standard libraries, and experiments must give the same numbers under g++ and clang, so the
// generator and its distributions are written out here.

#include <attnres/core/tensor.hpp>

#include <cmath>
#include <cstdint>
#include <numbers>

namespace attnres {

// xoshiro256** seeded through splitmix64 (Blackman & Vigna): fast, 256-bit state, and its
// whole state is four integers, so checkpoints can save and restore it exactly.
class rng {
 public:
  explicit rng(std::uint64_t seed = 0) { reseed(seed); }

  void reseed(std::uint64_t seed) {
    for (auto& s : state_) {
      seed += 0x9E3779B97F4A7C15ull;
      std::uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      s = z ^ (z >> 31);
    }
    has_spare_ = false;
  }

  std::uint64_t next_u64() {
    const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const std::uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }

  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

  // Uniform integer in [0, n), n > 0 (Lemire's multiply-shift; the tiny bias is irrelevant here).
  std::uint64_t below(std::uint64_t n) {
    __extension__ using u128 = unsigned __int128;  // GCC/Clang builtin; __extension__ keeps -Wpedantic quiet
    return static_cast<std::uint64_t>((static_cast<u128>(next_u64()) * n) >> 64);
  }

  // Standard normal by Box–Muller; the second value of each pair is kept for the next call.
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u1 = uniform();
    while (u1 <= 0.0) u1 = uniform();
    const double u2 = uniform();
    const double radius = std::sqrt(-2.0 * std::log(u1));
    spare_ = radius * std::sin(2.0 * std::numbers::pi * u2);
    has_spare_ = true;
    return radius * std::cos(2.0 * std::numbers::pi * u2);
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t state_[4]{};
  double spare_ = 0.0;
  bool has_spare_ = false;
};

// Fills t with mean + stddev·N(0,1).
template <class T>
void fill_normal(tensor<T>& t, rng& gen, double mean = 0.0, double stddev = 1.0) {
  for (T& x : t) x = static_cast<T>(mean + stddev * gen.normal());
}

// Fills t with U(lo, hi).
template <class T>
void fill_uniform(tensor<T>& t, rng& gen, double lo, double hi) {
  for (T& x : t) x = static_cast<T>(lo + (hi - lo) * gen.uniform());
}

}  // namespace attnres
