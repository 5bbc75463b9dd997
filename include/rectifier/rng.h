// A small, portable random generator (xoshiro256**): the same seed gives the same numbers with any compiler or
// standard library, which std::normal_distribution does not promise.
#pragma once
#include <cmath>
#include <cstdint>

namespace rectifier {

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) { reseed(seed); }
  void reseed(uint64_t seed) {
    uint64_t z = seed;
    for (auto& w : s_) w = splitmix(z);
    have_spare_ = false;
  }
  uint64_t next() {
    uint64_t r = rotl(s_[1] * 5, 7) * 9, t = s_[1] << 17;
    s_[2] ^= s_[0]; s_[3] ^= s_[1]; s_[1] ^= s_[2]; s_[0] ^= s_[3]; s_[2] ^= t; s_[3] = rotl(s_[3], 45);
    return r;
  }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Uniform integer in [0, n).
  uint64_t below(uint64_t n) { return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64); }
  // SplitMix64's output number i (from 0) of the sequence seeded with seed: any element of a stream drawn by index
  // (dropout's mask, the same on any number of threads).
  static uint64_t splitmix_at(uint64_t seed, uint64_t i) { return mix(seed + (i + 1) * kGamma); }
  // Standard normal (Box-Muller, the second value kept for the next call).
  double normal() {
    if (have_spare_) { have_spare_ = false; return spare_; }
    double u1 = uniform(), u2 = uniform();
    while (u1 <= 0.0) u1 = uniform();
    double r = std::sqrt(-2.0 * std::log(u1)), a = 6.283185307179586 * u2;
    spare_ = r * std::sin(a);
    have_spare_ = true;
    return r * std::cos(a);
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static constexpr uint64_t kGamma = 0x9e3779b97f4a7c15ULL;
  static uint64_t mix(uint64_t x) {
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
  }
  static uint64_t splitmix(uint64_t& z) { return mix(z += kGamma); }
  uint64_t s_[4];
  bool have_spare_ = false;
  double spare_ = 0;
};

}  // namespace rectifier
