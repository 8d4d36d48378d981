#pragma once
// The one place where OpenMP appears. Everything builds and runs without it (the loops then
// run serially); the reference backend never calls into here.

#include <attnres/core/index.hpp>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace attnres {

// Number of threads a parallel_for may use.
inline int max_threads() {
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
