// core/cpu_isa: the run-time choice of instruction set for the dispatched cpu kernels.

#include "test_util.hpp"

#include <attnres/core/cpu_isa.hpp>

#include <cstdlib>
#include <stdexcept>
#include <string>

using attnres::cpu_isa;

TEST_CASE("cpu_isa: the default is the widest supported, a scope sets and restores it", "[core][cpu_isa]") {
  REQUIRE(attnres::cpu_isa_supported(cpu_isa::baseline));
  const cpu_isa before = attnres::active_cpu_isa();
  REQUIRE(attnres::cpu_isa_supported(before));
  if (const char* env = std::getenv("ATTNRES_ISA"); !env || !*env)
    CHECK(before == (attnres::cpu_isa_supported(cpu_isa::avx512) ? cpu_isa::avx512 : cpu_isa::baseline));
  {
    const attnres::cpu_isa_scope use(cpu_isa::baseline);
    CHECK(attnres::active_cpu_isa() == cpu_isa::baseline);
  }
  CHECK(attnres::active_cpu_isa() == before);
  if (attnres::cpu_isa_supported(cpu_isa::avx512)) {
    const attnres::cpu_isa_scope use(cpu_isa::avx512);
    CHECK(attnres::active_cpu_isa() == cpu_isa::avx512);
  } else {
    // asking for kernels that cannot run is an error, and changes nothing
    REQUIRE_THROWS_AS(attnres::set_cpu_isa(cpu_isa::avx512), std::runtime_error);
    CHECK(attnres::active_cpu_isa() == before);
  }
  CHECK(attnres::active_cpu_isa() == before);
}

TEST_CASE("cpu_isa: ATTNRES_ISA accepts baseline and avx512 only", "[core][cpu_isa]") {
  CHECK(attnres::detail::parse_cpu_isa("baseline") == cpu_isa::baseline);
  CHECK(attnres::detail::parse_cpu_isa("avx512") == cpu_isa::avx512);
  for (const char* bad : {"AVX512", "avx2", "", "avx512 "}) {
    CAPTURE(bad);
    try {
      attnres::detail::parse_cpu_isa(bad);
      FAIL("no exception");
    } catch (const std::invalid_argument& e) {
      CHECK(std::string(e.what()) == "ATTNRES_ISA=" + std::string(bad) + ": expected baseline or avx512");
    }
  }
  CHECK(std::string(attnres::to_string(cpu_isa::avx512)) == "avx512");
  CHECK(std::string(attnres::to_string(cpu_isa::baseline)) == "baseline");
}

TEST_CASE("cpu_isa: the default follows ATTNRES_ISA", "[core][cpu_isa]") {
  // default_cpu_isa() is what active_cpu_isa() caches on first use; the variable is put back after
  const char* old = std::getenv("ATTNRES_ISA");
  const std::string saved = old ? old : "";
  ::setenv("ATTNRES_ISA", "baseline", 1);
  CHECK(attnres::detail::default_cpu_isa() == cpu_isa::baseline);
  ::setenv("ATTNRES_ISA", "sse9", 1);
  CHECK_THROWS_WITH(attnres::detail::default_cpu_isa(), "ATTNRES_ISA=sse9: expected baseline or avx512");
  ::setenv("ATTNRES_ISA", "avx512", 1);
  if (attnres::cpu_isa_supported(cpu_isa::avx512))
    CHECK(attnres::detail::default_cpu_isa() == cpu_isa::avx512);
  else
    CHECK_THROWS_AS(attnres::detail::default_cpu_isa(), std::runtime_error);
  ::unsetenv("ATTNRES_ISA");
  CHECK(attnres::detail::default_cpu_isa() ==
        (attnres::cpu_isa_supported(cpu_isa::avx512) ? cpu_isa::avx512 : cpu_isa::baseline));
  if (old) ::setenv("ATTNRES_ISA", saved.c_str(), 1);
}
