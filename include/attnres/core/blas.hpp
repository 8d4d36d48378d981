#pragma once
// Which BLAS the matrix products run on, and a fix for OpenBLAS on CPUs newer than itself.
//
// With ATTNRES_USE_BLAS (CMake, on by default when Debian's OpenMP OpenBLAS is installed) Eigen
// routes its matrix products to sgemm_/sgemv_ (EIGEN_USE_BLAS). OpenBLAS picks its kernels at
// load time from the CPU model; Debian 12's OpenBLAS 0.3.21 does not know AMD Zen 4/5, falls
// back to its AVX2 "Haswell" kernels and leaves half of an AVX-512 core unused (measured on a
// Zen 5 EPYC: 86 vs 160 GFLOP/s per core for sgemm at transformer shapes, bench_machine).
// OPENBLAS_CORETYPE=SkylakeX selects the AVX-512 kernels, but it is read only when the library
// loads, so a program has to be started with it: reexec_with_avx512_openblas() does that.

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

// True when OpenBLAS runs its AVX2 kernels on a CPU with the AVX-512 subsets its SkylakeX
// kernels need, and the user has not chosen a core type.
inline bool openblas_underuses_cpu() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (!uses_blas || !openblas_get_corename || std::getenv("OPENBLAS_CORETYPE")) return false;
  const std::string core = openblas_get_corename();
  const bool avx2_kernels = core == "Haswell" || core == "Zen" || core == "haswell" || core == "zen";
  return avx2_kernels && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512cd");
#else
  return false;
#endif
}

// Call first thing in main(argc, argv). When openblas_underuses_cpu(), restarts the program
// (same arguments, same process id) with OPENBLAS_CORETYPE=SkylakeX; otherwise, or if the
// restart fails, returns and the program goes on as it is. Set OPENBLAS_CORETYPE yourself (any
// value) to keep a choice; the restart never happens twice because the variable is then set.
inline void reexec_with_avx512_openblas([[maybe_unused]] char** argv) {
#if defined(__linux__)
  if (!openblas_underuses_cpu()) return;
  if (::setenv("OPENBLAS_CORETYPE", "SkylakeX", 1) != 0) return;
  ::execv("/proc/self/exe", argv);
  ::unsetenv("OPENBLAS_CORETYPE");  // execv returned: it failed; carry on unchanged
#endif
}

}  // namespace attnres
