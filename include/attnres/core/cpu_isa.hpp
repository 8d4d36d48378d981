#pragma once
// Which vector instruction set the cpu kernels run on, chosen at run time.
//
// Everything is compiled for the build's flags (AVX2 + FMA in our presets), and xsimd's batches
// have that width. On a CPU with AVX-512 the depth-attention loops can instead call a second set
// of row kernels that is compiled for AVX-512 alone (core/simd_avx512.hpp), the way xsimd's and
// Highway's dynamic dispatch do: one binary, the wider kernels only where the CPU runs them.
//
//   cpu_isa::baseline   the build's flags (what every other kernel uses)
//   cpu_isa::avx512     AVX-512F row kernels for float (double stays on the baseline)
//
// The default is the widest the CPU supports. ATTNRES_ISA=baseline|avx512 in the environment
// forces one for the whole process; set_cpu_isa / cpu_isa_scope choose it in code, so a test or
// benchmark can run both in one process. Asking for avx512 where it cannot run throws.

#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>

// The AVX-512 kernels need GCC/Clang's target attribute on x86-64. nvcc's host pass does not
// get them (the CUDA headers include the cpu ones); ATTNRES_NO_AVX512_KERNELS leaves them out.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(__CUDACC__) && \
    !defined(ATTNRES_NO_AVX512_KERNELS)
#define ATTNRES_HAVE_AVX512_KERNELS 1
#else
#define ATTNRES_HAVE_AVX512_KERNELS 0
#endif

namespace attnres {

enum class cpu_isa { baseline, avx512 };

inline const char* to_string(cpu_isa isa) { return isa == cpu_isa::avx512 ? "avx512" : "baseline"; }

// Whether this build has kernels for isa and this CPU (and its OS) can run them.
inline bool cpu_isa_supported(cpu_isa isa) {
  if (isa == cpu_isa::baseline) return true;
#if ATTNRES_HAVE_AVX512_KERNELS
  // __builtin_cpu_supports also checks that the OS saves the 512-bit registers (XGETBV)
  static const bool avx512 = __builtin_cpu_supports("avx512f");
  return avx512;
#else
  return false;
#endif
}

namespace detail {
inline cpu_isa parse_cpu_isa(std::string_view s) {
  if (s == "baseline") return cpu_isa::baseline;
  if (s == "avx512") return cpu_isa::avx512;
  throw std::invalid_argument("ATTNRES_ISA=" + std::string(s) + ": expected baseline or avx512");
}

inline void require_supported(cpu_isa isa) {
  if (!cpu_isa_supported(isa))
    throw std::runtime_error(std::string("cpu isa ") + to_string(isa) +
                             (ATTNRES_HAVE_AVX512_KERNELS ? " is not supported by this CPU"
                                                          : " kernels are not compiled into this build"));
}

inline cpu_isa default_cpu_isa() {
  if (const char* env = std::getenv("ATTNRES_ISA"); env && *env) {
    const cpu_isa isa = parse_cpu_isa(env);
    require_supported(isa);
    return isa;
  }
  return cpu_isa_supported(cpu_isa::avx512) ? cpu_isa::avx512 : cpu_isa::baseline;
}

// −1 until first asked, then the cpu_isa in force (one per process, shared by all threads)
inline std::atomic<int> active_isa{-1};
}  // namespace detail

// The instruction set the dispatched kernels use now.
inline cpu_isa active_cpu_isa() {
  int isa = detail::active_isa.load(std::memory_order_relaxed);
  if (isa < 0) {
    const int chosen = static_cast<int>(detail::default_cpu_isa());
    detail::active_isa.compare_exchange_strong(isa, chosen, std::memory_order_relaxed);
    isa = detail::active_isa.load(std::memory_order_relaxed);
  }
  return static_cast<cpu_isa>(isa);
}

// Choose the instruction set for the whole process (not while kernels run on other threads).
inline void set_cpu_isa(cpu_isa isa) {
  detail::require_supported(isa);
  detail::active_isa.store(static_cast<int>(isa), std::memory_order_relaxed);
}

// set_cpu_isa for a scope, restoring the previous choice on the way out.
class cpu_isa_scope {
 public:
  explicit cpu_isa_scope(cpu_isa isa) : previous_(active_cpu_isa()) { set_cpu_isa(isa); }
  ~cpu_isa_scope() { detail::active_isa.store(static_cast<int>(previous_), std::memory_order_relaxed); }
  cpu_isa_scope(const cpu_isa_scope&) = delete;
  cpu_isa_scope& operator=(const cpu_isa_scope&) = delete;

 private:
  cpu_isa previous_;
};

}  // namespace attnres
