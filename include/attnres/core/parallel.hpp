#pragma once
// The one place where OpenMP appears. Everything builds and runs without it (the loops then
// run serially); the reference backend never calls into here.

#include <attnres/core/index.hpp>

#include <atomic>
#include <exception>
#include <thread>
#include <utility>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace attnres {

namespace detail {
// A team of threads kept spinning through a stretch of many short parallel loops, so that each
// loop costs a spin-wait round trip between cores instead of an OpenMP fork and join. Decoding
// one token runs ≈ 40 loops of a few µs each; on the project's 2-core virtual machines a
// fork and join takes 2.7–3.3 µs and a spin round trip 0.8 µs (docs/performance.md, round 17).
// The calling thread (member 0) runs the stretch and hands each loop out; the other members
// wait for loops in `serve` until `finish`. Built by with_spinning_team below.
class spinning_team {
 public:
  // Member 0, before its first loop: the number of members.
  void start(int size) { size_ = size; }
  int size() const { return size_; }

  // Member 0: body(i) for i in [begin, end), split into `size` contiguous ranges, one a member
  // (the split of OpenMP's static schedule). Returns when every member is done, and then
  // rethrows the first exception a member's range threw.
  template <class Body>
  void run(index_t begin, index_t end, Body& body) {
    begin_ = begin, end_ = end;
    body_ = &body;
    job_ = [](void* b, index_t i0, index_t i1) {
      for (index_t i = i0; i < i1; ++i) (*static_cast<Body*>(b))(i);
    };
    done_.store(0, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);  // publishes the job: the others start
    work(0);
    for (int turns = 0; done_.load(std::memory_order_acquire) != size_ - 1;) wait(turns);  // sees their writes
    if (failed_.load(std::memory_order_relaxed)) {
      failed_.store(false, std::memory_order_relaxed);
      std::rethrow_exception(std::exchange(error_, nullptr));
    }
  }

  // Members 1 .. size − 1: serve loops until member 0 calls finish().
  void serve(int member) {
    unsigned seen = 0;
    for (;;) {
      unsigned g;
      for (int turns = 0; (g = generation_.load(std::memory_order_acquire)) == seen;) wait(turns);
      seen = g;
      if (stopped_) return;
      work(member);
      done_.fetch_add(1, std::memory_order_release);
    }
  }

  void finish() {
    stopped_ = true;
    generation_.fetch_add(1, std::memory_order_release);
  }

 private:
  void work(int member) {
    const index_t n = end_ - begin_;
    const index_t i0 = begin_ + n * member / size_, i1 = begin_ + n * (member + 1) / size_;
    try {
      if (i0 < i1) job_(body_, i0, i1);
    } catch (...) {
      if (!failed_.exchange(true)) error_ = std::current_exception();  // the first one is kept
    }
  }
  // One turn of a wait: a pause for the first few thousand turns (≈ 10–100 µs), then a yield of
  // the core, so that with more threads than free cores the member being waited for can run.
  static void wait(int& turns) {
    if (turns < 4096) {
      ++turns;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();  // lets the other hyperthread run and saves power while waiting
#endif
    } else {
      std::this_thread::yield();
    }
  }

  // Written by member 0 before it publishes a job (or stops), read by the others after they see
  // the new generation: the release/acquire pair on generation_ orders them.
  int size_ = 1;
  index_t begin_ = 0, end_ = 0;
  void* body_ = nullptr;
  void (*job_)(void*, index_t, index_t) = nullptr;
  bool stopped_ = false;
  std::exception_ptr error_;
  std::atomic<bool> failed_{false};
  alignas(64) std::atomic<unsigned> generation_{0};  // the others spin on this line...
  alignas(64) std::atomic<int> done_{0};             // ...and member 0 on this one
};

// The team the calling thread hands its loops to (set on member 0 inside with_spinning_team).
inline thread_local spinning_team* active_team = nullptr;
}  // namespace detail

// Number of threads a parallel_for may use.
inline int max_threads() {
  if (detail::active_team) return detail::active_team->size();
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// Elements per thread below which copying or filling memory is not worth a fork: a memcpy
// of 256 KiB takes ~10 µs, a fork and join of two threads a few µs.
inline constexpr index_t parallel_copy_grain = index_t(1) << 16;

// Rows of `cols` elements per chunk of such a row-wise memory operation.
inline index_t copy_grain_rows(index_t cols) { return cols > 0 && cols < parallel_copy_grain ? parallel_copy_grain / cols : 1; }

// Calls body(i) for i in [begin, end), split statically over the threads. Work items must be
// independent. Small ranges run serially: forking threads costs more than it saves.
template <class Body>
void parallel_for(index_t begin, index_t end, Body&& body, index_t min_parallel = 2) {
  if (detail::spinning_team* team = detail::active_team; team && end - begin >= min_parallel) {
    struct restore {
      detail::spinning_team* team;
      ~restore() { detail::active_team = team; }
    } on_exit{team};
    detail::active_team = nullptr;  // a loop inside the body runs serially, as in an OpenMP region
    team->run(begin, end, body);
    return;
  }
#if defined(_OPENMP)
  if (end - begin >= min_parallel && omp_get_max_threads() > 1 && !omp_in_parallel()) {
#pragma omp parallel for schedule(static)
    for (index_t i = begin; i < end; ++i) body(i);
    return;
  }
#else
  (void)min_parallel;
#endif
  for (index_t i = begin; i < end; ++i) body(i);
}

// Runs stretch() on the calling thread with the other threads of an OpenMP team spinning beside
// it, and every parallel_for / parallel_chunks inside it handed to that team: for a stretch of
// many loops too short to amortise an OpenMP fork and join each (LM::decode_step at batch ≤ 4).
// While it runs the other cores are busy waiting, and a BLAS call inside it is single-threaded,
// so it is not for stretches of large products. Runs stretch() directly where there is nothing to
// gain: one thread, no OpenMP, or already inside a parallel region or a team. Exceptions thrown
// in stretch() or in a loop body on any thread come out of this call.
template <class Stretch>
void with_spinning_team(Stretch&& stretch) {
#if defined(_OPENMP)
  if (omp_get_max_threads() > 1 && !omp_in_parallel() && !detail::active_team) {
    detail::spinning_team team;  // outlives every member: the region ends with a join
    std::exception_ptr error;
#pragma omp parallel
    {
      if (const int member = omp_get_thread_num(); member == 0) {
        team.start(omp_get_num_threads());
        detail::active_team = &team;
        try {
          stretch();
        } catch (...) {
          error = std::current_exception();
        }
        detail::active_team = nullptr;
        team.finish();
      } else {
        team.serve(member);
      }
    }
    if (error) std::rethrow_exception(error);
    return;
  }
#endif
  stretch();
}

// Splits [0, n) into at most max_threads() contiguous chunks of at least `grain` items.
inline index_t chunk_count(index_t n, index_t grain) {
  if (n <= 0) return 0;
  const index_t by_grain = (n + grain - 1) / grain;
  return by_grain < max_threads() ? by_grain : static_cast<index_t>(max_threads());
}

// Calls body(chunk, begin, end) once per chunk of chunk_count(n, grain), in parallel. The chunk
// index lets a body accumulate into its own slot of a per-chunk buffer (reduced afterwards by
// the caller), which keeps reductions deterministic for a given thread count.
template <class Body>
void parallel_chunks(index_t n, index_t grain, Body&& body) {
  const index_t chunks = chunk_count(n, grain);
  parallel_for(0, chunks, [&](index_t c) {
    const index_t begin = n * c / chunks, end = n * (c + 1) / chunks;
    body(c, begin, end);
  });
}

}  // namespace attnres
