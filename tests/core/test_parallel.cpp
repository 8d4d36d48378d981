// core/parallel: the loops cover their range exactly once, on an OpenMP fork and join or on a
// spinning team (with_spinning_team), and exceptions from either come out of the call.

#include "test_util.hpp"

#include <attnres/core/parallel.hpp>

#include <atomic>
#include <stdexcept>
#include <vector>

using attnres::index_t;
using attnres_test::thread_count_scope;  // 3 threads below: more than CI's 2 cores, and an odd
                                         // count, so the ranges split unevenly

namespace {

// parallel_for and parallel_chunks over [0, n): every index visited exactly once.
void require_each_index_once(index_t n) {
  CAPTURE(n);
  std::vector<std::atomic<int>> hits(static_cast<std::size_t>(n));
  attnres::parallel_for(0, n, [&](index_t i) { hits[static_cast<std::size_t>(i)]++; });
  attnres::parallel_chunks(n, 3, [&](index_t, index_t b, index_t e) {
    for (index_t i = b; i < e; ++i) hits[static_cast<std::size_t>(i)]++;
  });
  for (index_t i = 0; i < n; ++i) REQUIRE(hits[static_cast<std::size_t>(i)].load() == 2);
}

}  // namespace

TEST_CASE("parallel_for: every index once, outside and inside a spinning team", "[core][parallel]") {
  thread_count_scope threads(3);
  for (index_t n : {0, 1, 2, 3, 7, 64, 1001}) require_each_index_once(n);
  attnres::with_spinning_team([] {
    for (int round = 0; round < 50; ++round)  // many loops on one team, as in a decode step
      for (index_t n : {0, 1, 2, 3, 7, 64, 1001}) require_each_index_once(n);
  });
}

TEST_CASE("with_spinning_team: the loops use the team's threads, nested loops run serially", "[core][parallel]") {
  thread_count_scope threads(3);
  std::vector<int> team_sizes;
  std::atomic<int> outer{0}, inner{0};
  attnres::with_spinning_team([&] {
    team_sizes.push_back(attnres::max_threads());
    attnres::parallel_for(0, 6, [&](index_t) {
      outer++;
      attnres::parallel_for(0, 5, [&](index_t) { inner++; });  // on the member that runs i
    });
  });
  CHECK(outer.load() == 6);
  CHECK(inner.load() == 30);
#if defined(_OPENMP)
  REQUIRE(team_sizes.size() == 1);
  CHECK(team_sizes[0] == 3);
#endif
  // a team inside a team is the same team: the stretch just runs
  int ran = 0;
  attnres::with_spinning_team([&] { attnres::with_spinning_team([&] { ++ran; }); });
  CHECK(ran == 1);
}

TEST_CASE("with_spinning_team: exceptions from the stretch or any member's loop come out", "[core][parallel]") {
  thread_count_scope threads(3);
  // thrown on the calling thread, outside any loop
  CHECK_THROWS_WITH(attnres::with_spinning_team([] { throw std::runtime_error("stretch failed"); }),
                    "stretch failed");
  // thrown in the last member's range (index 99 of 100), then the team is reused
  int after = 0;
  CHECK_THROWS_WITH(attnres::with_spinning_team([&] {
                      attnres::parallel_for(0, 100, [](index_t i) {
                        if (i == 99) throw std::invalid_argument("item 99");
                      });
                    }),
                    "item 99");
  attnres::with_spinning_team([&] {
    try {
      attnres::parallel_for(0, 100, [](index_t i) {
        if (i == 0) throw std::invalid_argument("item 0");
      });
    } catch (const std::invalid_argument&) {
      ++after;  // caught inside the stretch: the team goes on
    }
    attnres::parallel_for(0, 100, [&](index_t i) {
      if (i == 50) ++after;
    });
  });
  CHECK(after == 2);
}
