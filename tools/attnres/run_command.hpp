#pragma once
// Runs a subcommand body with the tool's error conventions: --help prints usage (exit 0); a bad
// command line prints the problem and the usage (exit 2); any other attnres error prints its
// message (exit 1).

#include "args.hpp"

#include <cstdio>
#include <exception>
#include <functional>

namespace attnres::cli {

inline int run_command(args& a, int argc, char** argv, const std::function<void()>& body) {
  try {
    if (!a.parse(argc, argv, 2)) {
      std::fputs(a.usage().c_str(), stdout);
      return 0;
    }
  } catch (const usage_problem& e) {
    std::fprintf(stderr, "attnres: %s\n\n%s", e.what(), a.usage().c_str());
    return 2;
  }
  try {
    body();
    return 0;
  } catch (const usage_problem& e) {
    std::fprintf(stderr, "attnres: %s\n\n%s", e.what(), a.usage().c_str());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "attnres: error: %s\n", e.what());
    return 1;
  }
}

}  // namespace attnres::cli
