#pragma once
// Depth attention, cpu path: the same math as ops/reference/depth_attention.hpp, fused so each
// token reads each source row once, vectorised over D (xsimd) and parallel over tokens (OpenMP).
// Tested equal to the reference on awkward sizes (tests/ops/test_depth_attention.cpp).

#include <attnres/core/backend.hpp>
#include <attnres/core/cpu_isa.hpp>
#include <attnres/core/parallel.hpp>
#include <attnres/core/simd.hpp>
#include <attnres/core/simd_avx512.hpp>
#include <attnres/core/tensor.hpp>  // aligned_allocator
#include <attnres/ops/depth_attention_types.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <span>
#include <type_traits>
#include <vector>

namespace attnres::ops {

namespace cpu_detail {
// Tokens per parallel chunk: below this, forking threads costs more than the work.
inline constexpr index_t token_grain = 16;

// The token-outer loops (the forward, Phase 1) read n source rows per token, far apart in memory;
// the hardware prefetcher follows that poorly, so each row is requested a few tokens ahead
// (Phase 1 at M = 2048: 10–35 % faster; 4 tokens ahead was as good as any of 1–8). This is the
// distance of the general forward kernel (more than 9 sources), which asks for them in a burst.
inline constexpr index_t prefetch_ahead = 4;
// Phase 1 and the unrolled forward request a row inside the loop that reads the row before it
// (spread, not in a burst), and 2 tokens ahead is enough then (Phase 1: 1, 2 alike; 4 slower:
// docs/performance.md round 19).
inline constexpr index_t spread_prefetch_ahead = 2;
// The streaming loops (backward, merge) do more work per row, so their next rows are asked for
// fewer tokens ahead: the merge 2 tokens (−9 … −17 % in a Block<8> model; 4 ahead gave half that,
// 1 as much; docs/performance.md), the backward the next token (see its loop).
inline constexpr index_t stream_prefetch_ahead = 2;
// The backward's dh rows of one span of tokens: 256 KiB, an eighth of a 2 MiB L2 (128 tokens for
// S = 2 at D = 256; 32–256 measured alike in bench_depth_attention isa_ratio/backward). A
// variable, not a constant, so the tests can make spans short at their small sizes.
inline index_t backward_dh_bytes = index_t(256) << 10;
using simd::prefetch_row;  // core/simd.hpp

// One sweep over D for a (token, source) pair of the backward, instead of 2S + 1 axpys:
//   dv (+)= Σ_p (alpha_p·dh_p + k_p·q_p) + kv·v       (= when Overwrite: dv's old value is not read)
template <int K, bool Overwrite, class T>  // K = S when it is small and known (unrolled), else 0
void backward_row_update_k(index_t S, const T* const* dh, const T* const* q, const T* alpha, const T* k, T kv,
                           const T* v, T* dv, index_t D) {
  using B = simd::batch<T>;
  constexpr index_t W = simd::width<T>;
  const index_t P = K > 0 ? K : S;
  const B vkv(kv);
  index_t d = 0;
  if constexpr (K > 0) {
    // Pointers and coefficients in locals: the stores below may alias anything the compiler
    // cannot see through, and would make it reload them from the arrays at every step.
    const T *dhk[K], *qk[K];
    B ak[K], kk[K];
    for (int p = 0; p < K; ++p) dhk[p] = dh[p], qk[p] = q[p], ak[p] = B(alpha[p]), kk[p] = B(k[p]);
    for (; d + W <= D; d += W) {
      const B vv = B::load_unaligned(v + d);
      B sum = Overwrite ? vkv * vv : xsimd::fma(vkv, vv, B::load_unaligned(dv + d));
      for (int p = 0; p < K; ++p) {
        sum = xsimd::fma(ak[p], B::load_unaligned(dhk[p] + d), sum);
        sum = xsimd::fma(kk[p], B::load_unaligned(qk[p] + d), sum);
      }
      sum.store_unaligned(dv + d);
    }
  } else {
    for (; d + W <= D; d += W) {
      const B vv = B::load_unaligned(v + d);
      B sum = Overwrite ? vkv * vv : xsimd::fma(vkv, vv, B::load_unaligned(dv + d));
      for (index_t p = 0; p < P; ++p) {
        sum = xsimd::fma(B(alpha[p]), B::load_unaligned(dh[p] + d), sum);
        sum = xsimd::fma(B(k[p]), B::load_unaligned(q[p] + d), sum);
      }
      sum.store_unaligned(dv + d);
    }
  }
  for (; d < D; ++d) {
    T sum = (Overwrite ? T(0) : dv[d]) + kv * v[d];
    for (index_t p = 0; p < P; ++p) sum += alpha[p] * dh[p][d] + k[p] * q[p][d];
    dv[d] = sum;
  }
}

template <bool Overwrite, class T>
void backward_row_update(index_t S, const T* const* dh, const T* const* q, const T* alpha, const T* k, T kv,
                         const T* v, T* dv, index_t D) {
  switch (S) {
    case 1: return backward_row_update_k<1, Overwrite>(S, dh, q, alpha, k, kv, v, dv, D);
    case 2: return backward_row_update_k<2, Overwrite>(S, dh, q, alpha, k, kv, v, dv, D);
    case 4: return backward_row_update_k<4, Overwrite>(S, dh, q, alpha, k, kv, v, dv, D);
    default: return backward_row_update_k<0, Overwrite>(S, dh, q, alpha, k, kv, v, dv, D);
  }
}

// The row kernels the two-phase and backward loops are built from, per instruction set: the
// build's own (xsimd at the compile flags) and, for float on a CPU that has it, AVX-512
// (core/simd_avx512.hpp). with_row_kernels<T>(f) calls f with the set core/cpu_isa.hpp chose;
// the loops are written once, generic over it.
template <class T>
struct baseline_row_kernels {
  static T dot(const T* a, const T* b, index_t n) { return simd::dot(a, b, n); }
  static void dots_with(const T* v, const T* const* q, index_t m, index_t n, T* out) { simd::dots_with(v, q, m, n, out); }
  // the same, with a row to request from memory first (ahead: nullptr for none)
  static void dots_with(const T* v, const T* const* q, index_t m, index_t n, T* out, const T* ahead) {
    if (ahead) prefetch_row(ahead, n);
    simd::dots_with(v, q, m, n, out);
  }
  static void weighted_sum(const T* const* x, const T* w, index_t m, index_t n, T* out) {
    simd::weighted_sum(x, w, m, n, out);
  }
  static void add_weighted_sum(const T* const* x, const T* w, index_t m, index_t n, T* out) {
    simd::add_weighted_sum(x, w, m, n, out);
  }
  template <bool Overwrite>
  static void row_update(index_t S, const T* const* dh, const T* const* q, const T* alpha, const T* k, T kv, const T* v,
                         T* dv, index_t D) {
    backward_row_update<Overwrite>(S, dh, q, alpha, k, kv, v, dv, D);
  }
  // The pair and multi-output forms, one row or output at a time here: with 16 registers
  // (AVX2) there is no room to hold a second row's accumulators and coefficients.
  static void dots_with_pair(const T* v0, const T* v1, const T* const* q, index_t m, index_t n, T* out0, T* out1) {
    simd::dots_with(v0, q, m, n, out0);
    simd::dots_with(v1, q, m, n, out1);
  }
  // ahead: up to 4 rows the caller wants soon (the next token's), requested first
  template <bool Overwrite>
  static void row_update_pair(index_t S, const T* const* dh, const T* const* q, const T* alpha0, const T* k0, T kv0,
                              const T* v0, T* dv0, const T* alpha1, const T* k1, T kv1, const T* v1, T* dv1, index_t D,
                              const T* const* ahead, int n_ahead) {
    for (int i = 0; i < n_ahead; ++i) prefetch_row(ahead[i], D);
    backward_row_update<Overwrite>(S, dh, q, alpha0, k0, kv0, v0, dv0, D);
    backward_row_update<Overwrite>(S, dh, q, alpha1, k1, kv1, v1, dv1, D);
  }
  static void weighted_sums(const T* const* x, const T* w, index_t m, index_t S, index_t n, T* const* out) {
    for (index_t p = 0; p < S; ++p) simd::weighted_sum(x, w + p * m, m, n, out[p]);
  }
};

#if ATTNRES_HAVE_AVX512_KERNELS
struct avx512_row_kernels {
  static float dot(const float* a, const float* b, index_t n) { return simd::avx512::dot(a, b, n); }
  static void dots_with(const float* v, const float* const* q, index_t m, index_t n, float* out,
                        const float* ahead = nullptr) {
    simd::avx512::dots_with(v, q, m, n, out, ahead);  // ahead requested a line per step
  }
  static void weighted_sum(const float* const* x, const float* w, index_t m, index_t n, float* out) {
    simd::avx512::weighted_sum(x, w, m, n, out);
  }
  static void add_weighted_sum(const float* const* x, const float* w, index_t m, index_t n, float* out) {
    simd::avx512::add_weighted_sum(x, w, m, n, out);
  }
  // backward_row_update as weighted sums of the rows [v, dh_0, q_0, dh_1, q_1, …] with the
  // weights [kv, α_0, k_0, α_1, k_1, …]: 5 points (11 rows) a pass over dv
  template <bool Overwrite>
  static void row_update(index_t S, const float* const* dh, const float* const* q, const float* alpha, const float* k,
                         float kv, const float* v, float* dv, index_t D) {
    constexpr index_t cap = 11;
    static_assert(cap <= simd::avx512::detail::max_rows_per_pass);
    const float* rows[cap];
    float w[cap];
    index_t r = 0;
    rows[r] = v, w[r++] = kv;
    bool first = true;
    for (index_t p = 0; p < S; ++p) {
      rows[r] = dh[p], w[r++] = alpha[p];
      rows[r] = q[p], w[r++] = k[p];
      if (r + 2 > cap || p == S - 1) {
        if (first && Overwrite)
          simd::avx512::weighted_sum(rows, w, r, D, dv);
        else
          simd::avx512::add_weighted_sum(rows, w, r, D, dv);
        first = false;
        r = 0;
      }
    }
  }
  // Two sources of one token at once: each load of a dh_p or q_p row serves both (the backward
  // is bound by its loads: −35 % in cache, −18 % on rows from memory, docs/performance.md)
  static void dots_with_pair(const float* v0, const float* v1, const float* const* q, index_t m, index_t n,
                             float* out0, float* out1) {
    simd::avx512::dots_with_pair(v0, v1, q, m, n, out0, out1);
  }
  template <bool Overwrite>
  static void row_update_pair(index_t S, const float* const* dh, const float* const* q, const float* alpha0,
                              const float* k0, float kv0, const float* v0, float* dv0, const float* alpha1,
                              const float* k1, float kv1, const float* v1, float* dv1, index_t D,
                              const float* const* ahead, int n_ahead) {
    simd::avx512::row_update_pair<Overwrite>(S, dh, q, alpha0, k0, kv0, v0, dv0, alpha1, k1, kv1, v1, dv1, D, ahead,
                                             n_ahead);
  }
  // Phase 1's S outputs in one pass over the token's source rows
  static void weighted_sums(const float* const* x, const float* w, index_t m, index_t S, index_t n, float* const* out) {
    simd::avx512::weighted_sums(x, w, m, S, n, out);
  }
};
#endif

template <class T, class F>
void with_row_kernels(F&& f) {
#if ATTNRES_HAVE_AVX512_KERNELS
  if constexpr (std::is_same_v<T, float>)
    if (active_cpu_isa() == cpu_isa::avx512) return f(avx512_row_kernels{});
#endif
  f(baseline_row_kernels<T>{});
}

// The S queries folded once per call, q_p = w_p ⊙ g_p, rows of an (S,D) buffer. The buffer
// is the calling thread's and is reused by its next call, so a call allocates nothing once warm
// (decode runs these ops once per token). It starts on a cache line: the backward's row update
// loads every q_p row once per token and pair of sources, and on malloc's 16-byte alignment each
// 64-byte load spanned two lines (the backward pass of 7 sources × 5 points alone: 1.64 → 1.42
// ms; a Block<8> training step: −0.05 and −0.09 %, near the noise; docs/performance.md round 24).
template <class T, class QueryOf>
const T* folded_queries(index_t S, index_t D, QueryOf query_of) {
  thread_local std::vector<T, aligned_allocator<T>> buf;
  if (buf.size() < static_cast<std::size_t>(S * D)) buf.resize(static_cast<std::size_t>(S * D));
  for (index_t p = 0; p < S; ++p) {
    const depth_query<T> q = query_of(p);
    simd::multiply(q.w, q.g, buf.data() + p * D, D);
  }
  return buf.data();
}

// 1/r from Σ_d v_d² over D channels
template <class T>
T inv_rms_of(T sum_squares, index_t D, T eps) {
  return T(1) / std::sqrt(sum_squares / T(D) + eps);
}
// The first token whose statistic is not finite (NaN or Inf in its row), or -1: r is finite
// and positive exactly when 1/r is.
template <class T>
index_t first_bad_token(const T* inv_rms, index_t M) {
  for (index_t t = 0; t < M; ++t)
    if (!(std::isfinite(inv_rms[t]) && inv_rms[t] > T(0))) return t;
  return -1;
}
}  // namespace cpu_detail

template <class T>
index_t key_norm_stats(backend::cpu, no_deduce<const_matrix_view<T>> v /*(M,D)*/, no_deduce<T> eps, T* inv_rms /*(M)*/) {
  parallel_chunks(v.rows, cpu_detail::token_grain, [&](index_t, index_t begin, index_t end) {
    for (index_t t = begin; t < end; ++t) inv_rms[t] = cpu_detail::inv_rms_of(simd::sum_squares(v.row(t), v.cols), v.cols, eps);
  });
  return cpu_detail::first_bad_token(inv_rms, v.rows);
}

// out = a + b and its key-norm statistic in one pass over the rows (a block sum is read again
// right after it is written otherwise: 8 passes of 2 MB per Block<8> training step).
template <class T>
index_t sum_key_norm_stats(backend::cpu, no_deduce<const_matrix_view<T>> a /*(M,D)*/, no_deduce<const_matrix_view<T>> b /*(M,D)*/,
                           no_deduce<matrix_view<T>> out /*(M,D)*/, no_deduce<T> eps, T* inv_rms /*(M)*/) {
  const index_t D = out.cols;
  parallel_chunks(out.rows, cpu_detail::token_grain, [&](index_t, index_t begin, index_t end) {
    for (index_t t = begin; t < end; ++t)
      inv_rms[t] = cpu_detail::inv_rms_of(simd::sum_to_squares(a.row(t), b.row(t), out.row(t), D), D, eps);
  });
  return cpu_detail::first_bad_token(inv_rms, out.rows);
}

template <class T>
void row_dots(backend::cpu, no_deduce<const_matrix_view<T>> a /*(M,D)*/, no_deduce<const_matrix_view<T>> b /*(M,D)*/, T* out /*(M)*/) {
  parallel_chunks(a.rows, 4 * cpu_detail::token_grain, [&](index_t, index_t begin, index_t end) {
    for (index_t t = begin; t < end; ++t) out[t] = simd::dot(a.row(t), b.row(t), a.cols);
  });
}

namespace cpu_detail {
// Most gather points read few sources (Block<N> at most N + 1), so the forward has a kernel per
// source count K ≤ 9 (Block<8>'s output reads 9): its K accumulators or weights and the query
// fit the 16 vector registers of AVX2, and a token costs two sweeps over D and a K-wide softmax.
inline constexpr index_t max_unrolled_sources = 9;

// One token, K sources: s_j = (q · v_j)·(1/r_j) in one sweep over D,
// α = softmax(s) into a[0..K), then h = Σ_j α_j v_j in a second sweep. With Fold the query is
// q = w ⊙ g formed on the fly (one token: cheaper than folding it into a buffer first);
// otherwise w already holds w ⊙ g and g is unused. a has room for padded<T>(K) numbers.
// ahead (or nullptr): K rows of a later token, requested a line at a time during the first sweep
// (spread over the work, not in a burst: see dots_with in core/simd_avx512.hpp).
template <int K, bool Fold, class T>
void forward_token(const T* w, const T* g, const T* const* rows, const T* inv_rms, index_t D, T* h, T* a,
                   const T* const* ahead) {
  using B = simd::batch<T>;
  constexpr index_t W = simd::width<T>;
  // An FMA's result is ready 4 cycles later and two start per cycle: the logits need about 8
  // independent chains, so up to 4 sources get two accumulators each (even and odd batches).
  constexpr int chains = K <= 4 ? 2 : 1;
  const T* v[K];  // locals: the stores below could otherwise alias them and force reloads
  B acc[chains][K];
  for (int j = 0; j < K; ++j) {
    v[j] = rows[j];
    for (int c = 0; c < chains; ++c) acc[c][j] = B(T(0));
  }
  auto query = [&](index_t d) {
    if constexpr (Fold) return B::load_unaligned(w + d) * B::load_unaligned(g + d);
    else return B::load_unaligned(w + d);
  };
  constexpr index_t line = 64 / static_cast<index_t>(sizeof(T));
  index_t d = 0;
  for (; d + chains * W <= D; d += chains * W) {
    if (ahead)
      for (int j = 0; j < K; ++j)
        for (index_t e = 0; e < chains * W; e += line) __builtin_prefetch(ahead[j] + d + e);
    for (int c = 0; c < chains; ++c) {
      const B q = query(d + c * W);
      for (int j = 0; j < K; ++j) acc[c][j] = xsimd::fma(q, B::load_unaligned(v[j] + d + c * W), acc[c][j]);
    }
  }
  if (ahead)  // the lines the loop above did not reach
    for (int j = 0; j < K; ++j)
      for (index_t e = d; e < D; e += line) __builtin_prefetch(ahead[j] + e);
  for (; d + W <= D; d += W) {  // the odd batch left by two chains
    const B q = query(d);
    for (int j = 0; j < K; ++j) acc[0][j] = xsimd::fma(q, B::load_unaligned(v[j] + d), acc[0][j]);
  }
  for (int j = 0; j < K; ++j) {
    B sum = acc[0][j];
    if constexpr (chains == 2) sum += acc[1][j];
    a[j] = xsimd::hadd(sum);
  }
  for (index_t e = d; e < D; ++e) {
    const T q = Fold ? w[e] * g[e] : w[e];
    for (int j = 0; j < K; ++j) a[j] += q * v[j][e];
  }
  for (int j = 0; j < K; ++j) a[j] *= inv_rms[j];
  simd::softmax_padded(a, K);
  // h = Σ_j α_j v_j, a batch of h at a time; the rows are still in L1 from the logits.
  simd::weighted_sum_of<K>(v, a, D, h);
}

template <bool Fold, class T>
void forward_token(index_t n, const T* w, const T* g, const T* const* rows, const T* inv_rms, index_t D, T* h, T* a,
                   const T* const* ahead) {
  switch (n) {
    case 1: return forward_token<1, Fold>(w, g, rows, inv_rms, D, h, a, ahead);
    case 2: return forward_token<2, Fold>(w, g, rows, inv_rms, D, h, a, ahead);
    case 3: return forward_token<3, Fold>(w, g, rows, inv_rms, D, h, a, ahead);
    case 4: return forward_token<4, Fold>(w, g, rows, inv_rms, D, h, a, ahead);
    case 5: return forward_token<5, Fold>(w, g, rows, inv_rms, D, h, a, ahead);
    case 6: return forward_token<6, Fold>(w, g, rows, inv_rms, D, h, a, ahead);
    case 7: return forward_token<7, Fold>(w, g, rows, inv_rms, D, h, a, ahead);
    case 8: return forward_token<8, Fold>(w, g, rows, inv_rms, D, h, a, ahead);
    default: return forward_token<9, Fold>(w, g, rows, inv_rms, D, h, a, ahead);
  }
}

// One token with q = w ⊙ g formed on the fly (decoding). Where the CPU has AVX-512 its kernels
// do the two sweeps: the rows are in cache and the sweeps wait on FMA chains, which 16-lane
// registers shorten and 32 registers let run two to a source (bench_depth_attention
// isa_ratio/decode_forward: 0.85–0.94 of the time per call, 5 sources 149 → 130 ns).
template <class T>
void forward_one_token(index_t n, const T* w, const T* g, const T* const* rows, const T* inv_rms, index_t D, T* h, T* a) {
#if ATTNRES_HAVE_AVX512_KERNELS
  if constexpr (std::is_same_v<T, float>)
    if (active_cpu_isa() == cpu_isa::avx512) {
      simd::avx512::folded_dots(w, g, rows, n, D, a);
      for (index_t j = 0; j < n; ++j) a[j] *= inv_rms[j];
      simd::softmax_padded(a, n);
      simd::avx512::weighted_sum(rows, a, n, D, h);
      return;
    }
#endif
  forward_token<true>(n, w, g, rows, inv_rms, D, h, a, static_cast<const T* const*>(nullptr));
}

// The one-shot forward over [sources…] or, with a partial sum, [sources…, partial] whose
// statistic is not given but taken per token from its row, just before the sweeps that read the
// row again, and written to partial_inv_rms.
// Per token: the n logits, then the softmax, then h = Σ_j α_j v_j in one pass over h (the
// source rows are still in L1 from the logits). Each source row comes from memory once.
template <class T>
void one_shot_forward(std::span<const depth_source<T>> sources, const_matrix_view<T> partial, T* partial_inv_rms, T eps,
                      depth_query<T> q, matrix_view<T> h /*(M,D)*/, matrix_view<T> alpha /*(n,M)*/) {
  const bool with_partial = partial_inv_rms != nullptr;
  const index_t n = static_cast<index_t>(sources.size()) + (with_partial ? 1 : 0);
  const index_t M = h.rows, D = h.cols;
  if (n == 0) {  // no sources: h = 0, as the empty sum of the reference
    for (index_t t = 0; t < M; ++t) std::fill(h.row(t), h.row(t) + D, T(0));
    return;
  }
  const bool unrolled = n <= max_unrolled_sources;
  // One token (decoding) folds w ⊙ g inside its sweep; more tokens share a folded copy.
  const T* qg = M == 1 && unrolled ? nullptr : folded_queries<T>(1, D, [&](index_t) { return q; });
  // Tokens [begin, end) with scratch for n row pointers (this token's and a later one's), n
  // statistics and padded<T>(n) weights. The unrolled kernel requests the later token's rows
  // during its first sweep (spread); the general one, 4 tokens ahead in a burst before it.
  auto tokens = [&](index_t begin, index_t end, const T** rows, const T** later, T* r, T* a) {
    for (index_t t = begin; t < end; ++t) {
      const index_t ahead = t + (unrolled ? spread_prefetch_ahead : prefetch_ahead);
      for (index_t j = 0; j < n; ++j) {
        const bool part = with_partial && j == n - 1;
        const auto& v = part ? partial : sources[j].value;
        rows[j] = v.row(t);
        if (ahead < end) later[j] = v.row(ahead);
        if (ahead < end && !unrolled) prefetch_row(later[j], D);
        r[j] = part ? (partial_inv_rms[t] = inv_rms_of(simd::sum_squares(rows[j], D), D, eps))
                    : sources[j].inv_rms[t];
      }
      const T* const* spread = unrolled && ahead < end ? later : nullptr;
      if (!unrolled) {
        simd::dots_with(qg, rows, n, D, a);  // the query read once per 4 sources
        for (index_t j = 0; j < n; ++j) a[j] *= r[j];
        simd::softmax_padded(a, n);
        simd::weighted_sum(rows, a, n, D, h.row(t));
      } else if (qg) {
        forward_token<false>(n, qg, qg, rows, r, D, h.row(t), a, spread);
      } else {
        forward_one_token(n, q.w, q.g, rows, r, D, h.row(t), a);  // one token: nothing to request ahead
      }
      for (index_t j = 0; j < n; ++j) alpha(j, t) = a[j];
    }
  };
  if (unrolled && M <= token_grain) {  // one chunk (decoding): this thread, scratch on the stack
    constexpr index_t cap = simd::padded<T>(max_unrolled_sources);
    const T *rows[cap], *later[cap];
    T r[cap], a[cap];
    tokens(0, M, rows, later, r, a);
    return;
  }
  parallel_chunks(M, token_grain, [&](index_t, index_t begin, index_t end) {
    thread_local std::vector<const T*> rows, later;  // this worker's scratch, grown only
    thread_local std::vector<T> r, a;
    const auto need = static_cast<std::size_t>(simd::padded<T>(n));
    if (rows.size() < need) rows.resize(need), later.resize(need), r.resize(need), a.resize(need);
    tokens(begin, end, rows.data(), later.data(), r.data(), a.data());
  });
}

}  // namespace cpu_detail

template <class T>
void depth_attention_forward(backend::cpu, std::span<const depth_source<T>> sources, depth_query<T> q,
                             no_deduce<matrix_view<T>> h /*(M,D)*/, no_deduce<matrix_view<T>> alpha /*(n,M)*/) {
  cpu_detail::one_shot_forward<T>(sources, {}, nullptr, T(0), q, h, alpha);
}

// The partial's statistic with no op or pass of its own: decoding's gather points after a
// block's first sublayer (the policy's share of a decode step −0.09 … −0.15 points for Block<4>
// and Block<8>, docs/performance.md round 22).
template <class T>
index_t depth_attention_forward_normed(backend::cpu, std::span<const depth_source<T>> sources,
                                       no_deduce<const_matrix_view<T>> partial /*(M,D)*/, no_deduce<T> eps,
                                       T* partial_inv_rms /*(M)*/, no_deduce<depth_query<T>> q,
                                       no_deduce<matrix_view<T>> h /*(M,D)*/, no_deduce<matrix_view<T>> alpha /*(n+1,M)*/) {
  cpu_detail::one_shot_forward<T>(sources, partial, partial_inv_rms, eps, q, h, alpha);
  return cpu_detail::first_bad_token(partial_inv_rms, h.rows);
}

// Phase 1 for S queries. Per token: the S·n logits (each source row read once for all S
// queries), then per query its max m and ℓ = Σ_j e^{s_j − m}, then o_p = Σ_j e^{s_pj − m_p} v_j
// for all S queries in one pass over the n rows (the AVX-512 kernels load each row once for
// all S; a Block<8> step's Phase 1 −13 %, docs/performance.md round 19).
template <class T>
void depth_attention_stats(backend::cpu, std::span<const depth_source<T>> sources,
                           no_deduce<std::span<const depth_query<T>>> queries, no_deduce<std::span<const depth_stats<T>>> out) {
  const index_t n = static_cast<index_t>(sources.size());
  const index_t S = static_cast<index_t>(queries.size());
  if (S == 0 || n == 0) return;
  const index_t M = out[0].o.rows, D = out[0].o.cols;
  const T* qg = cpu_detail::folded_queries<T>(S, D, [&](index_t p) { return queries[p]; });
  // The per-token loops over the S queries are short: with S a compile-time constant (Block's
  // usual 1, 2 and 4) they unroll (Phase 1 in cache: −17 %, docs/performance.md round 19).
  auto run = [&](auto kernels, auto s_const) {
    using R = decltype(kernels);
    constexpr index_t SC = decltype(s_const)::value;
    const index_t Sq = SC > 0 ? SC : S;
    parallel_chunks(M, cpu_detail::token_grain, [&](index_t, index_t begin, index_t end) {
      thread_local std::vector<const T*> rows, q;  // this worker's scratch
      thread_local std::vector<T*> o;
      thread_local std::vector<T> s, e;
      rows.resize(static_cast<std::size_t>(n));
      q.resize(static_cast<std::size_t>(Sq));
      o.resize(static_cast<std::size_t>(Sq));
      s.resize(static_cast<std::size_t>(Sq * n));
      e.resize(static_cast<std::size_t>(Sq * n));  // e[p·n + j]: query p's weight of source j
      for (index_t p = 0; p < Sq; ++p) q[p] = qg + p * D;
      for (index_t t = begin; t < end; ++t) {
        const bool ahead = t + cpu_detail::spread_prefetch_ahead < end;
        for (index_t j = 0; j < n; ++j) {  // s[j·S + p] = logit of query p over source j
          rows[j] = sources[j].value.row(t);
          // source j's row of a later token, requested a line at a time as this row is read
          R::dots_with(rows[j], q.data(), Sq, D, s.data() + j * Sq,
                       ahead ? sources[j].value.row(t + cpu_detail::spread_prefetch_ahead) : nullptr);
          for (index_t p = 0; p < Sq; ++p) s[j * Sq + p] *= sources[j].inv_rms[t];
        }
        for (index_t p = 0; p < Sq; ++p) {
          const depth_stats<T>& st = out[p];
          T* ep = e.data() + p * n;
          T m = -std::numeric_limits<T>::infinity();
          for (index_t j = 0; j < n; ++j) m = std::max(m, st.logits(j, t) = s[j * Sq + p]);
          T l = 0;
          for (index_t j = 0; j < n; ++j) l += (ep[j] = std::exp(s[j * Sq + p] - m));
          if (st.normalized) {  // the same state scaled by 1/ℓ: weights α_j = e_j/ℓ
            const T inv_l = T(1) / l;
            for (index_t j = 0; j < n; ++j) ep[j] *= inv_l;
            m += std::log(l);
            l = 1;
          }
          st.m[t] = m;
          st.l[t] = l;
          o[p] = st.o.row(t);
        }
        // o_p = Σ_j e_pj v_j for all S queries in one pass over the n rows
        R::weighted_sums(rows.data(), e.data(), n, Sq, D, o.data());
      }
    });
  };
  cpu_detail::with_row_kernels<T>([&](auto kernels) {
    switch (S) {
      case 1: return run(kernels, std::integral_constant<index_t, 1>{});
      case 2: return run(kernels, std::integral_constant<index_t, 2>{});
      case 4: return run(kernels, std::integral_constant<index_t, 4>{});
      default: return run(kernels, std::integral_constant<index_t, 0>{});
    }
  });
}

namespace cpu_detail {
// The merge's token loop. With norm_out, the partial's key-norm statistic is not read but taken
// in the sweep that computes its logit (q·v and v·v together) and written to norm_out.
template <class T>
void merge_tokens(const depth_stats<T>& st, const depth_source<T>* partial, T* norm_out, T eps, const depth_query<T>& q,
                  matrix_view<T> h, matrix_view<T> alpha) {
  const index_t D = h.cols, n = st.logits.rows;
  const T* qg = folded_queries<T>(1, D, [&](index_t) { return q; });
  with_row_kernels<T>([&](auto kernels) {
    using R = decltype(kernels);
    parallel_chunks(h.rows, cpu_detail::token_grain, [&](index_t, index_t begin, index_t end) {
      for (index_t t = begin; t < end; ++t) {
        if (const index_t ahead = t + cpu_detail::stream_prefetch_ahead; ahead < end) {  // o and h are cold
          cpu_detail::prefetch_row(st.o.row(ahead), D);
          if (st.o.data != h.data) cpu_detail::prefetch_row(h.row(ahead), D);
        }
        T mx = st.m[t], ep = 0, eo = 1;
        if (partial) {
          const T* pv = partial->value.row(t);
          T sp;
          if (norm_out) {
            const T* with[2] = {qg, pv};
            T qv_vv[2];
            R::dots_with(pv, with, 2, D, qv_vv);
            norm_out[t] = inv_rms_of(qv_vv[1], D, eps);
            sp = qv_vv[0] * norm_out[t];
          } else {
            sp = R::dot(qg, pv, D) * partial->inv_rms[t];
          }
          mx = std::max(mx, sp);
          eo = std::exp(st.m[t] - mx);
          ep = std::exp(sp - mx);
        }
        const T zinv = T(1) / (eo * st.l[t] + ep);
        // h = (e_o/z)·o + (e_p/z)·partial, one pass over h; nothing to write when h is o itself
        // with weight 1 (normalised statistics and no partial)
        const T* rows[2] = {st.o.row(t), partial ? partial->value.row(t) : nullptr};
        const T w[2] = {eo * zinv, ep * zinv};
        if (partial || rows[0] != h.row(t) || w[0] != T(1)) R::weighted_sum(rows, w, partial ? 2 : 1, D, h.row(t));
        for (index_t j = 0; j < n; ++j) alpha(j, t) = std::exp(st.logits(j, t) - mx) * zinv;
        if (partial) alpha(n, t) = ep * zinv;
      }
    });
  });
}
}  // namespace cpu_detail

template <class T>
void depth_attention_merge(backend::cpu, const depth_stats<T>& st, const depth_source<T>* partial,
                           no_deduce<depth_query<T>> q, no_deduce<matrix_view<T>> h /*(M,D)*/, no_deduce<matrix_view<T>> alpha /*(n[+1],M)*/) {
  cpu_detail::merge_tokens<T>(st, partial, nullptr, T(0), q, h, alpha);
}

// The partial's statistic in the merge's own sweep over its rows (one pass of 2 MB less per
// merge with a partial: 8 per Block<8> training step).
template <class T>
index_t depth_attention_merge_normed(backend::cpu, const depth_stats<T>& st, no_deduce<const_matrix_view<T>> partial /*(M,D)*/,
                                     no_deduce<T> eps, T* partial_inv_rms /*(M)*/, no_deduce<depth_query<T>> q,
                                     no_deduce<matrix_view<T>> h /*(M,D)*/, no_deduce<matrix_view<T>> alpha /*(n+1,M)*/) {
  const depth_source<T> part{partial, partial_inv_rms};
  cpu_detail::merge_tokens<T>(st, &part, partial_inv_rms, eps, q, h, alpha);
  return cpu_detail::first_bad_token(partial_inv_rms, h.rows);
}

// Fused backward: per token, each source row is read once for all S points. The parameter
// gradients share one accumulator per point, a_p = Σ_t Σ_j dS_pj u_pj, because
//   ∂ℒ/∂w_p = g_p ⊙ a_p   and   ∂ℒ/∂g_p = w_p ⊙ a_p.
// Each thread accumulates its own a_p; the per-thread sums are added in a fixed order.
template <class T>
void depth_attention_backward(backend::cpu, std::span<const depth_source<T>> sources,
                              no_deduce<std::span<const depth_query_grad<T>>> points,
                              no_deduce<std::span<const matrix_view<T>>> dsources /*n × (M,D)*/,
                              grad_write mode = grad_write::accumulate) {
  const index_t n = static_cast<index_t>(sources.size());
  const index_t S = static_cast<index_t>(points.size());
  if (S == 0 || n == 0) return;
  const index_t M = points[0].dh.rows, D = points[0].dh.cols;
  const T* qg = cpu_detail::folded_queries<T>(S, D, [&](index_t p) { return points[p].q; });
  const index_t chunks = chunk_count(M, cpu_detail::token_grain);
  // a_p per chunk; each chunk's slot starts on its own cache line, so threads writing
  // neighbouring slots do not share (and bounce) a line.
  constexpr index_t line = 64 / static_cast<index_t>(sizeof(T));
  const index_t slot = (S * D + line - 1) / line * line;
  // The calling thread's buffer, reused (a fresh one costs page faults). Workers reach it only
  // through acc_base: inside the lambda the name of a thread_local means the worker's own.
  thread_local std::vector<T, aligned_allocator<T>> acc;
  acc.assign(static_cast<std::size_t>(chunks * slot), T(0));
  T* const acc_base = acc.data();
  const bool overwrite = mode == grad_write::overwrite;
  // A point whose logits are kept knows q_p·v = s_pj·r_j: only its dot dh_p·v remains. The
  // others recompute q_p·v; recompute[p] is where that dot lands (after the S dh dots), or −1.
  std::vector<index_t> recompute(static_cast<std::size_t>(S), -1);
  index_t n_dots = S;
  for (index_t p = 0; p < S; ++p)
    if (points[p].logits.data == nullptr) recompute[p] = n_dots++;
  cpu_detail::with_row_kernels<T>([&](auto kernels) {
    using R = decltype(kernels);
    parallel_chunks(M, cpu_detail::token_grain, [&](index_t chunk, index_t begin, index_t end) {
      // Thread-private scratch: per point p, its dh row, folded query, α, dS_p / r and accumulator.
      // rows = [dh_0 .. dh_{S-1}, the q_p to recompute]: the rows each source row is dotted with;
      // q_rows = all S queries, for the row update.
      std::vector<const T*> rows(static_cast<std::size_t>(n_dots)), q_rows(static_cast<std::size_t>(S));
      const T* const* dh_rows = rows.data();
      // per source of the pair (r = 0, 1): α_pj, dS_pj / r_j and the dots, each S or n_dots long
      std::vector<T> a(static_cast<std::size_t>(2 * S)), k(a.size()), dots(static_cast<std::size_t>(2 * n_dots));
      for (index_t p = 0; p < S; ++p) {
        q_rows[p] = qg + p * D;
        if (recompute[p] >= 0) rows[recompute[p]] = q_rows[p];
      }
      // a_p += Σ_t k_p(t)·v_t is added a tile of tokens at a time: one load and store of a_p per
      // tile, instead of per token (a read-modify-write per token and point bound the kernel).
      constexpr index_t tile = 8;
      std::vector<T> k_tile(static_cast<std::size_t>(S * 2 * tile));  // k_p(t) of both sources, row p
      const T* v_tile[2 * tile];
      // Sources outer, two at a time, and a span of tokens inner: each pass streams two sources'
      // rows, their gradients' and the S dh rows, consecutive in memory. Tokens outer (each
      // source row read once, the dh rows kept in L1) jumps between 2n + S streams at every row
      // and measured 2–2.6× slower at M = 2048; so did tiles of 4–64 tokens (bench_depth_attention,
      // docs/performance.md). The span is short enough for its S dh rows to stay in L2 while
      // the n sources pass over them (read from memory once, not n times): −0.35 … −0.48 % of
      // Block<8>'s step on a Xeon with 2 MiB of L2 per core. Two sources a pass share every load
      // of a dh and q row (the loop is bound by its loads in cache: −35 %). The hardware
      // prefetcher alone left the loop waiting on v and dv, so the next token's rows are requested
      // while one is worked on: a line per step of the pair's row update, not all 64 lines in a
      // burst before it (the burst waits on the core's few miss buffers and stalls the work
      // behind it: −18 % with the spread on rows from memory, docs/performance.md round 19).
      const index_t span = std::max(tile, cpu_detail::backward_dh_bytes / (S * D * index_t(sizeof(T))) / tile * tile);
      // Source j's coefficients at token t from its dots (r: which of the pair): fills a, k and
      // k_tile at r's offset and returns kv, the coefficient of v_j itself.
      auto coefficients = [&](index_t j, index_t t, index_t slot_in_tile, int r) {
        const T rinv = sources[j].inv_rms[t];
        const T* dj = dots.data() + r * n_dots;
        T proj = 0;  // Σ_p dS_p (u·q_p): the coefficient of u in the RMSNorm Jacobian term
        for (index_t p = 0; p < S; ++p) {
          const T alpha = a[r * S + p] = points[p].alpha(j, t);
          const T ds = alpha * (dj[p] - points[p].c[t]);  // dS_pj
          proj += ds * (recompute[p] < 0 ? points[p].logits(j, t) : dj[recompute[p]] * rinv);  // u·q_p = s_pj
          k[r * S + p] = ds * rinv;
          k_tile[static_cast<std::size_t>(p * 2 * tile + slot_in_tile)] = ds * rinv;
        }
        // dv_j += Σ_p (α_pj G_p + dS_pj/r_j · q_p) − u_j (u_j·p)/(D r_j)
        return -proj * rinv * rinv / T(D);
      };
      for (index_t s0 = begin; s0 < end; s0 += span) {
        const index_t s1 = std::min(end, s0 + span);
        for (index_t j = 0; j < n; j += 2) {
          const bool pair = j + 1 < n;
          for (index_t t0 = s0; t0 < s1; t0 += tile) {
            const index_t nt = std::min(tile, s1 - t0);
            for (index_t t = t0; t < t0 + nt; ++t) {
              // the next token's rows: its dh rows (in L2) now, the sources' rows and their
              // gradients' (from memory) a line per step of the pair's row update
              const T* next[4];
              int n_next = 0;
              if (const index_t ahead = t + 1; ahead < s1) {
                for (index_t i = j; i < j + 1 + pair; ++i) {
                  next[n_next++] = sources[i].value.row(ahead);
                  next[n_next++] = dsources[i].row(ahead);
                }
                for (index_t p = 0; p < S; ++p) cpu_detail::prefetch_row(points[p].dh.row(ahead), D);
                // a lone source's token is short work: its rows are asked for at once (spread
                // over its one row update they came late: +17 % at n = 1)
                if (!pair)
                  for (int i = 0; i < n_next; ++i) cpu_detail::prefetch_row(next[i], D);
              }
              for (index_t p = 0; p < S; ++p) rows[p] = points[p].dh.row(t);
              const T* v0 = sources[j].value.row(t);
              v_tile[t - t0] = v0;
              if (pair) {
                const T* v1 = sources[j + 1].value.row(t);
                v_tile[nt + (t - t0)] = v1;
                // dh_p·v and (unless kept as logits) q_p·v for both sources, each row read once
                R::dots_with_pair(v0, v1, rows.data(), n_dots, D, dots.data(), dots.data() + n_dots);
                const T kv0 = coefficients(j, t, t - t0, 0), kv1 = coefficients(j + 1, t, nt + (t - t0), 1);
                if (overwrite)
                  R::template row_update_pair<true>(S, dh_rows, q_rows.data(), a.data(), k.data(), kv0, v0, dsources[j].row(t),
                                                    a.data() + S, k.data() + S, kv1, v1, dsources[j + 1].row(t), D, next, n_next);
                else
                  R::template row_update_pair<false>(S, dh_rows, q_rows.data(), a.data(), k.data(), kv0, v0, dsources[j].row(t),
                                                     a.data() + S, k.data() + S, kv1, v1, dsources[j + 1].row(t), D, next, n_next);
              } else {
                R::dots_with(v0, rows.data(), n_dots, D, dots.data());
                const T kv = coefficients(j, t, t - t0, 0);
                if (overwrite)
                  R::template row_update<true>(S, dh_rows, q_rows.data(), a.data(), k.data(), kv, v0, dsources[j].row(t), D);
                else
                  R::template row_update<false>(S, dh_rows, q_rows.data(), a.data(), k.data(), kv, v0, dsources[j].row(t), D);
              }
            }
            // a_p += Σ_t dS_pj/r_j · v_j over the tile, both sources (their rows were just read: in L1)
            for (index_t p = 0; p < S; ++p)
              R::add_weighted_sum(v_tile, k_tile.data() + p * 2 * tile, pair ? 2 * nt : nt, D, acc_base + chunk * slot + p * D);
          }
        }
      }
    });
  });
  for (index_t p = 0; p < S; ++p) {
    std::vector<T> a_total(static_cast<std::size_t>(D), T(0));
    for (index_t c = 0; c < chunks; ++c) simd::add(acc_base + c * slot + p * D, a_total.data(), D);
    for (index_t d = 0; d < D; ++d) {
      points[p].dw[d] += points[p].q.g[d] * a_total[d];
      points[p].dg[d] += points[p].q.w[d] * a_total[d];
    }
  }
}

}  // namespace attnres::ops
