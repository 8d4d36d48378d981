#pragma once
// Catch2 v2 (Debian 12) or v3, whichever the build found, plus the one matcher spelled
// differently between them.
#include <string>

#if defined(ATTNRES_CATCH2_V3)
#include <catch2/catch_all.hpp>
using Catch::Approx;
namespace attnres_test {
inline auto contains(const std::string& s) { return Catch::Matchers::ContainsSubstring(s); }
}  // namespace attnres_test
#else
#include <catch2/catch.hpp>
namespace attnres_test {
inline auto contains(const std::string& s) { return Catch::Contains(s); }
}  // namespace attnres_test
#endif
