#pragma once
// Which BLAS the matrix products run on, and a fix for OpenBLAS on CPUs newer than itself.
//
// With ATTNRES_USE_BLAS (CMake, on by default when Debian's OpenMP OpenBLAS is installed) Eigen
// routes its matrix products to sgemm_/sgemv_ (EIGEN_USE_BLAS). OpenBLAS picks its kernels at
// load time from the CPU model, and Debian 12's OpenBLAS 0.3.21 does not know the newest ones:
//   - AMD Zen 4/5 get its AVX2 "Haswell" kernels, half of an AVX-512 core (measured on a Zen 5
//     EPYC: 86 vs 160 GFLOP/s per core for sgemm at transformer shapes, bench_machine);
//   - an Intel Xeon of family 6 model 207 (Emerald Rapids) gets "Prescott", its SSE3 kernels:
//     31 vs ≈ 200 GFLOP/s on two cores, a training step 4× slower.
// OPENBLAS_CORETYPE=SkylakeX (AVX-512) or Haswell (AVX2 + FMA) selects wider ones, but it is
// read only when the library loads, so a program has to be started with it:
// reexec_with_avx512_openblas() does that.

#include <cstdlib>
#include <string>

#if defined(__linux__)
#include <unistd.h>
#endif

extern "C" char* openblas_get_corename(void) __attribute__((weak));  // present only with OpenBLAS

namespace attnres {

inline constexpr bool uses_blas =
#if defined(EIGEN_USE_BLAS)
    true;
#else
    false;
#endif

// "OpenBLAS (Haswell)", "BLAS", or "Eigen" when products use Eigen's own kernels.
inline std::string blas_description() {
  if (!uses_blas) return "Eigen";
  if (openblas_get_corename) return std::string("OpenBLAS (") + openblas_get_corename() + ")";
  return "BLAS";
}

// The OpenBLAS core type that would use a CPU's widest vectors, when OpenBLAS's kernel set `core`
// (openblas_get_corename(), any case) is narrower: "SkylakeX" (AVX-512) or "Haswell" (AVX2 +
// FMA). Empty when `core` is as wide as the CPU allows. The decision alone, for any CPU; the
// functions below ask it about this one.
inline std::string wider_openblas_coretype(std::string core, bool cpu_avx512, bool cpu_avx2_fma) {
  for (char& c : core) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  // OpenBLAS's x86-64 kernel sets with AVX-512, and those with at least AVX2 + FMA
  const bool avx512_kernels = core == "skylakex" || core == "cooperlake" || core == "sapphirerapids";
  const bool avx2_kernels = avx512_kernels || core == "haswell" || core == "zen";
  if (cpu_avx512 && !avx512_kernels) return "SkylakeX";
  if (cpu_avx2_fma && !avx2_kernels) return "Haswell";
  return {};
}

namespace detail {
// OpenBLAS's wider core type for this CPU, whether or not OPENBLAS_CORETYPE is set.
inline std::string wider_openblas_coretype_here() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (!uses_blas || !openblas_get_corename) return {};
  // the subsets OpenBLAS's SkylakeX kernels are built for
  const bool cpu_avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
                          __builtin_cpu_supports("avx512cd");
  const bool cpu_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return wider_openblas_coretype(openblas_get_corename(), cpu_avx512, cpu_avx2);
#else
  return {};
#endif
}
}  // namespace detail

// The OPENBLAS_CORETYPE that would use this CPU's widest vectors, when OpenBLAS picked narrower
// kernels and the user has not chosen a core type. Empty when OpenBLAS's own choice is as wide
// as the CPU allows, or when OPENBLAS_CORETYPE is set (then the choice is the user's).
inline std::string openblas_better_coretype() {
  if (std::getenv("OPENBLAS_CORETYPE")) return {};
  return detail::wider_openblas_coretype_here();
}

// A note for the user when OPENBLAS_CORETYPE is set (by them or their environment) to kernels
// narrower than `wider` would be (wider_openblas_coretype's answer; empty: nothing to say).
// attnres leaves such a choice alone, so the note only says what it costs: on a Zen 5 with
// AVX-512 a training step runs 1.6–1.7× faster on SkylakeX than on Haswell (docs/performance.md).
inline std::string narrow_openblas_note(const char* env_coretype, const std::string& core, const std::string& wider) {
  if (!env_coretype || !*env_coretype || wider.empty()) return {};
  return "OPENBLAS_CORETYPE=" + std::string(env_coretype) + " runs OpenBLAS's " + core +
         " kernels, narrower than this CPU's vectors; OPENBLAS_CORETYPE=" + wider +
         " would use them all and run the matrix products faster (measured in docs/performance.md)";
}

// narrow_openblas_note for this process: empty unless OPENBLAS_CORETYPE holds back OpenBLAS here.
inline std::string openblas_kernel_note() {
  if (!uses_blas || !openblas_get_corename) return {};
  return narrow_openblas_note(std::getenv("OPENBLAS_CORETYPE"), openblas_get_corename(),
                              detail::wider_openblas_coretype_here());
}

// True when OpenBLAS's kernels are narrower than the CPU's vectors (openblas_better_coretype).
inline bool openblas_underuses_cpu() { return !openblas_better_coretype().empty(); }

// Call first thing in main(argc, argv). When openblas_underuses_cpu(), restarts the program
// (same arguments, same process id) with OPENBLAS_CORETYPE=openblas_better_coretype();
// otherwise, or if the restart fails, returns and the program goes on as it is. Set
// OPENBLAS_CORETYPE yourself (any value) to keep a choice; the restart never happens twice
// because the variable is then set. (Named for the common case; a CPU with AVX2 but no AVX-512
// that OpenBLAS does not know gets the AVX2 kernels the same way.)
inline void reexec_with_avx512_openblas([[maybe_unused]] char** argv) {
#if defined(__linux__)
  const std::string core = openblas_better_coretype();
  if (core.empty()) return;
  if (::setenv("OPENBLAS_CORETYPE", core.c_str(), 1) != 0) return;
  ::execv("/proc/self/exe", argv);
  ::unsetenv("OPENBLAS_CORETYPE");  // execv returned: it failed; carry on unchanged
#endif
}

}  // namespace attnres
