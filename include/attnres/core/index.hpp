#pragma once
// index_t: the type of sizes, offsets and loop indices everywhere in attnres.

#include <cstddef>

namespace attnres {

// Sizes and offsets are signed (loop arithmetic never wraps). Not named `index`: that would
// clash with POSIX index() for code that says `using namespace attnres`.
using index_t = std::ptrdiff_t;

}  // namespace attnres
