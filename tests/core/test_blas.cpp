// core/blas: which OpenBLAS kernel set would use a CPU's widest vectors, and the note the tool
// prints when OPENBLAS_CORETYPE holds OpenBLAS to narrower ones.

#include "test_util.hpp"

#include <attnres/core/blas.hpp>

#include <cstdlib>
#include <string>

using attnres::narrow_openblas_note;
using attnres::wider_openblas_coretype;

TEST_CASE("blas: the wider OpenBLAS core type for a CPU", "[core][blas]") {
  // an AVX-512 CPU (Zen 4/5, Xeons since Skylake-SP) on the AVX2 or older kernels
  CHECK(wider_openblas_coretype("Haswell", true, true) == "SkylakeX");
  CHECK(wider_openblas_coretype("HASWELL", true, true) == "SkylakeX");  // any case
  CHECK(wider_openblas_coretype("Zen", true, true) == "SkylakeX");
  CHECK(wider_openblas_coretype("Prescott", true, true) == "SkylakeX");
  // already as wide as the CPU
  CHECK(wider_openblas_coretype("SkylakeX", true, true).empty());
  CHECK(wider_openblas_coretype("Cooperlake", true, true).empty());
  CHECK(wider_openblas_coretype("SapphireRapids", true, true).empty());
  CHECK(wider_openblas_coretype("Haswell", false, true).empty());
  CHECK(wider_openblas_coretype("Zen", false, true).empty());
  // an AVX2 CPU that OpenBLAS did not recognise (Emerald Rapids got Prescott, docs/performance.md)
  CHECK(wider_openblas_coretype("Prescott", false, true) == "Haswell");
  CHECK(wider_openblas_coretype("Sandybridge", false, true) == "Haswell");
  // nothing wider to offer
  CHECK(wider_openblas_coretype("Prescott", false, false).empty());
  CHECK(wider_openblas_coretype("", false, false).empty());
}

TEST_CASE("blas: the note for a core type set narrower than the CPU", "[core][blas]") {
  const std::string note = narrow_openblas_note("Haswell", "Haswell", "SkylakeX");
  CHECK(note.find("OPENBLAS_CORETYPE=Haswell runs OpenBLAS's Haswell kernels") == 0);
  CHECK(note.find("OPENBLAS_CORETYPE=SkylakeX") != std::string::npos);
  // the variable names a set OpenBLAS maps to another (an unknown name falls back to its default)
  CHECK(narrow_openblas_note("nonsense", "Prescott", "Haswell").find("runs OpenBLAS's Prescott kernels") !=
        std::string::npos);
  // nothing to say: the kernels are as wide as the CPU, or the choice was OpenBLAS's own
  CHECK(narrow_openblas_note("SkylakeX", "SkylakeX", "").empty());
  CHECK(narrow_openblas_note(nullptr, "Haswell", "SkylakeX").empty());
  CHECK(narrow_openblas_note("", "Haswell", "SkylakeX").empty());
}

TEST_CASE("blas: this process's answers agree with the decision", "[core][blas]") {
  // With OPENBLAS_CORETYPE set there is nothing to restart for; the note then says whether the
  // setting holds OpenBLAS back. Without a BLAS (or with another one) there is nothing to say.
  const std::string note = attnres::openblas_kernel_note();
  if (!attnres::uses_blas || !openblas_get_corename) {
    CHECK(note.empty());
    CHECK(attnres::openblas_better_coretype().empty());
    return;
  }
  const std::string wider = attnres::detail::wider_openblas_coretype_here();
  const char* env = std::getenv("OPENBLAS_CORETYPE");
  CHECK(note == narrow_openblas_note(env, openblas_get_corename(), wider));
  if (env)
    CHECK(attnres::openblas_better_coretype().empty());
  else
    CHECK(attnres::openblas_better_coretype() == wider);
}
