#pragma once
// Errors: every misuse of attnres ends in one of these exceptions, whose message names the
// thing that is wrong and what was expected. Nothing in the library aborts or invokes UB on
// bad input; compile-time mistakes are static_asserts instead.

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace attnres {

// Base of every attnres exception, so callers can catch the library's errors in one place.
struct error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A tensor whose shape does not match what the operation needs.
struct shape_error : error {
  using error::error;
};

// A configuration that cannot be built (e.g. N blocks that do not divide L sublayers).
struct config_error : error {
  using error::error;
};

// NaN or Inf where finite numbers are required.
struct numeric_error : error {
  using error::error;
};

// A call made in the wrong order (e.g. gather(3) before push(2)).
struct usage_error : error {
  using error::error;
};

// A file that cannot be read or written, or whose contents are malformed or hostile.
struct io_error : error {
  using error::error;
};

namespace detail {
template <class... Parts>
std::string concat(Parts&&... parts) {
  std::ostringstream os;
  (os << ... << std::forward<Parts>(parts));
  return os.str();
}
}  // namespace detail

// expects<E>(condition, message parts...): throws E with the concatenated message when the
// condition is false. The parts are only formatted on failure.
template <class E = error, class... Parts>
inline void expects(bool condition, Parts&&... parts) {
  if (!condition) throw E(detail::concat(std::forward<Parts>(parts)...));
}

}  // namespace attnres
