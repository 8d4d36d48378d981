#pragma once
// BlockAttnRes<N> — the L sublayers form N blocks of S = L/N; sources are block sums:
//
//   b_0 = x0 ,  b_n = Σ_{j∈B_n} v_j ,  b_n^i = Σ of the first i outputs of block n (partial)
//   sublayer at position i of block n reads  [b_0 .. b_{n-1}]            if i = 0
//                                            [b_0 .. b_{n-1}, b_n^i]     if i ≥ 1
//   h = Σ α·V ,  α = softmax( w_lᵀ RMSNorm_{g_l}(V) )                    (paper Eqs. 5–6)
//
// and the output (gather point L+1) mixes [b_0 .. b_N]. A block starts with no partial source
// (never a zero vector in the softmax). N = L is FullAttnRes; N = 1 is [x0, partial].
//
// Forward uses the paper's two-phase computation (Algorithm 1): at a block's first sublayer,
// Phase 1 computes softmax statistics of all S queries of the block over the completed blocks
// in one pass; each sublayer then merges its statistics with the partial sum (Phase 2).
// Decoding (inference on at most one_shot_max_tokens tokens) attends over the n sources in one
// pass instead: fewer operations when the sources are in cache.
// Backward mirrors it: each gather point back-propagates into the partial sum at once (the
// sublayers of its own block need that next), while the completed-block terms of all S points
// are deferred to the block's first sublayer and done in batched passes over the block sums.
// Those passes go by groups of G consecutive blocks (from the top): a block's pass does only
// the source the next block down needs complete, b_{n-1}, for the group's points seen so far;
// the group's lowest block does b_0 .. b_{lo-1} for all the group's points at once. Each pass
// streams its block sums and their gradients through memory, so a group of G blocks reads
// the lower block sums once instead of G times (G = 1: one pass per block over all b_j<n).

#include <attnres/core/backend.hpp>
#include <attnres/ops/depth_attention.hpp>
#include <attnres/residual/attn_res_params.hpp>
#include <attnres/residual/call_sequence.hpp>
#include <attnres/residual/residual_policy.hpp>

#include <algorithm>
#include <array>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace attnres {

namespace detail {
// Blocks per backward group G (see the top of the file), read when a policy is made; 0 chooses
// G = 2 when N ≥ 2S, else 1. A group of 2 saves about 3n − 3 − S rows of memory traffic per
// token at block n (the lower block sums and their gradients, read once instead of twice,
// against S more dh rows kept), and keeps S more dh streams: Block<8> of 16 sublayers, S = 2,
// moves 86 instead of 125 rows per token (bench_overhead, Zen 5, AVX-512 GEMMs: −0.9 % of a
// training step); Block<4> of 16, S = 4, would save 3 of 47 (measured: no change). G = 4
// saves a few rows more and measured no better. A variable, so tests can try every G.
inline int block_backward_group = 0;
}  // namespace detail

template <int N>
struct BlockAttnRes {
  static_assert(N >= 1, "BlockAttnRes<N>: N is the number of blocks and must be at least 1");
  static constexpr std::string_view name = "block";
  static constexpr int blocks = N;
  template <class T = float, class Backend = default_backend>
  class with;
};

template <int N>
template <class T, class Backend>
class BlockAttnRes<N>::with {
 public:
  using scalar = T;
  using backend = Backend;
  using space = typename backend_traits<Backend>::memory_space;  // where params, caches and views live
  using tensor_t = backend_tensor<T, Backend>;
  using view_t = matrix_view<T, space>;
  using const_view_t = const_matrix_view<T, space>;
  using Params = attn_res_params<T, space>;
  using Grads = attn_res_grads<T, space>;
  struct Cache {
    index_t M = 0;
    std::vector<tensor_t> block;          // N+1 × (M,D)  b_0 = x0, completed block sums b_1..b_N
    std::vector<tensor_t> block_inv_rms;  // N+1 × (M)
    int completed = 0;                     // blocks b_0 .. b_{completed-1} are complete
    // The partial sum b_n^i of the current block. Inference keeps one running buffer; training
    // writes each b_n^i into its own slot (partial_at, indexed by the gather point that reads
    // it), so the backward finds it there without a copy.
    tensor_t partial;                     // (M,D)  inference
    tensor_t partial_inv_rms;             // (M)
    std::vector<tensor_t> partial_at;     // L × (M,D)  training: b_n^i as read by gather point l (i ≥ 1)
    std::vector<tensor_t> partial_at_inv_rms;  // L × (M)
    const_view_t partial_now{};           // the current b_n^i (one of the buffers above)
    bool has_partial = false;
    // Phase-1 statistics of the current block's S gather points. The first point has no
    // partial source: its statistics are written normalised into its own h, so stat_o[0] stays
    // empty. The logits have a slot per gather point in training (L × (N,M)): the backward
    // reads them again.
    std::vector<tensor_t> stat_o, stat_m, stat_l, stat_logits;  // S × (M,D), (M), (M); S or L × (N,M)
    std::vector<tensor_t> alpha;          // L+1 × (n_sources(l), M)
    std::vector<detail::kept_view<T, space>> h; // L+1  gather outputs, kept by the caller (training)
    // Backward state.
    std::vector<tensor_t> dblock;         // N+1 × (M,D)  ∂ℒ/∂b_j
    tensor_t dpartial;                    // (M,D)  running ∂ℒ/∂v for the current block
    std::vector<tensor_t> dh_block;       // G·S × (M,D)  upstream gradients of the current group's points
    std::vector<tensor_t> c_block;        // G·S × (M)    dh·h of the current group's points
    tensor_t c_out;                        // (M)        dh·h of the output
    tensor_t dh_out;                       // (M,D)      the output's dh, kept for the top group's batched passes
    // Argument lists of the ops, reused so that a call allocates nothing (decode runs them
    // once per token).
    // N+1 views of b_0..b_N, set by begin(); only the completed ones, b_0..b_{completed-1}, are read.
    std::vector<ops::depth_source<T, space>> block_sources;
    std::vector<ops::depth_query<T>> queries;
    std::vector<ops::depth_stats<T, space>> stats;
    std::vector<ops::depth_query_grad<T, space>> points;
    std::vector<view_t> dsources;
    tensor_t unused_dg;                     // (D)  dg sink when the key gains are not learned
    detail::call_sequence seq;
  };

  // Inference with at most this many tokens (decoding) uses the one-shot computation per gather
  // point instead of the two phases; both are the paper's Eq. 5–6 (tested equal).
  static constexpr index_t one_shot_max_tokens = 16;

  explicit with(residual_config cfg) : cfg_(cfg) {
    detail::check_config(label(), cfg_);
    expects<config_error>(cfg_.n_sublayers % N == 0, label(), ": ", N, " blocks do not divide ", cfg_.n_sublayers,
                          " sublayers (L must be a multiple of N; L counts attention and MLP sublayers, 2 per "
                          "transformer layer)");
    S_ = cfg_.n_sublayers / N;
    G_ = detail::block_backward_group > 0 ? std::min(detail::block_backward_group, N) : N >= 2 * S_ ? 2 : 1;
  }

  const residual_config& config() const { return cfg_; }
  int n_sublayers() const { return cfg_.n_sublayers; }
  int block_size() const { return S_; }
  int backward_group() const { return G_; }  // blocks per batched backward group (detail::block_backward_group)
  Params init_params() const { return detail::make_attn_res_params<T, space>(cfg_); }
  Grads zero_grads() const { return detail::make_attn_res_grads<T, space>(cfg_); }

  // Gather point l (≤ L) at position i of block n (0-based) reads b_0..b_n plus the partial
  // when i ≥ 1; the output reads b_0..b_N.
  index_t n_sources(int l) const {
    if (l > cfg_.n_sublayers) return N + 1;
    return (l - 1) / S_ + 1 + ((l - 1) % S_ > 0 ? 1 : 0);
  }

  void begin(Cache& c, const_view_t x0 /*(M,D)*/, bool keep_for_backward = true) const {
    expects<shape_error>(x0.cols == cfg_.d_model, label(), ": embedding has width ", x0.cols, " but D = ",
                         cfg_.d_model);
    const int L = cfg_.n_sublayers;
    const index_t M = x0.rows, D = cfg_.d_model;
    if (c.M != M || c.block.size() != static_cast<std::size_t>(N + 1)) {
      c = Cache{};
      c.M = M;
      for (int j = 0; j <= N; ++j) {
        c.block.emplace_back(std::vector<index_t>{M, D});
        c.block_inv_rms.emplace_back(std::vector<index_t>{M});
      }
      c.partial = tensor_t({M, D});
      c.partial_inv_rms = tensor_t({M});
      c.stat_o.resize(static_cast<std::size_t>(S_));
      for (int p = 0; p < S_; ++p) {
        if (p > 0) c.stat_o[p] = tensor_t({M, D});
        c.stat_m.emplace_back(std::vector<index_t>{M});
        c.stat_l.emplace_back(std::vector<index_t>{M});
      }
      for (int l = 1; l <= L + 1; ++l) c.alpha.emplace_back(std::vector<index_t>{n_sources(l), M});
    }
    c.h.resize(keep_for_backward ? static_cast<std::size_t>(L + 1) : 0);
    c.stat_logits.resize(static_cast<std::size_t>(keep_for_backward ? L : S_));
    for (auto& lg : c.stat_logits)
      if (lg.size() != N * M) lg = tensor_t({N, M});
    c.partial_at.resize(keep_for_backward ? static_cast<std::size_t>(L) : 0);
    c.partial_at_inv_rms.resize(c.partial_at.size());
    for (int l = 1; l <= static_cast<int>(c.partial_at.size()); ++l)
      if ((l - 1) % S_ > 0 && c.partial_at[l - 1].rows() != M) {
        c.partial_at[l - 1] = tensor_t({M, D});
        c.partial_at_inv_rms[l - 1] = tensor_t({M});
      }
    c.block_sources.clear();
    for (int j = 0; j <= N; ++j) c.block_sources.push_back({c.block[j].mat(), c.block_inv_rms[j].data()});
    copy(x0, c.block[0].mat());
    detail::key_norm_or_throw(Backend{}, label(), "the embedding x0", x0, T(cfg_.norm_eps), c.block_inv_rms[0].data());
    c.completed = 1;
    c.has_partial = false;
    c.seq.begin(label(), L, keep_for_backward);
  }

  void gather(const Params& p, Cache& c, int l, view_t h /*(M,D)*/) const {
    detail::check_params(label(), cfg_, p);
    c.seq.gather(l);
    detail::check_view<T>(label(), "gather output", c.M, cfg_.d_model, h);
    const int L = cfg_.n_sublayers;
    const bool keep = c.seq.keep_for_backward();
    if (l == L + 1) {
      ops::depth_attention_forward(Backend{}, completed_sources(c), p.at(l), h, c.alpha[l - 1].mat());
    } else if (!keep && c.M <= one_shot_max_tokens) {
      // Decoding a few tokens: one pass over [b_0 .. b_{n-1}, b_n^i] takes fewer operations than
      // Phase 1 + merge (n + 1 logits and one weighted sum, instead of n logits and a weighted sum
      // for each of the block's S queries, then a merge). The two-phase batching pays when the
      // block sums come from memory, and a few tokens' rows are in cache anyway.
      // After a block's first sublayer the partial sum is a source too, its statistic taken in
      // the same pass.
      if ((l - 1) % S_ == 0)
        ops::depth_attention_forward(Backend{}, completed_sources(c), p.at(l), h, c.alpha[l - 1].mat());
      else
        detail::throw_if_bad_token(label(), [&] { return partial_name(l); },
                                   ops::depth_attention_forward_normed(Backend{}, completed_sources(c), c.partial_now,
                                                                       T(cfg_.norm_eps), c.partial_inv_rms.data(), p.at(l),
                                                                       h, c.alpha[l - 1].mat()));
    } else {
      const int i = (l - 1) % S_;
      if (i == 0) {
        phase1(p, c, l, h);  // writes this point's output into h already (normalised): the merge writes α
        const ops::depth_source<T, space>* no_partial = nullptr;
        ops::depth_attention_merge(Backend{}, stats(c, l, h), no_partial, p.at(l), h, c.alpha[l - 1].mat());
      } else {
        // the partial sum's key-norm statistic, taken by the merge in its pass over the partial
        T* inv_rms = keep ? c.partial_at_inv_rms[l - 1].data() : c.partial_inv_rms.data();
        detail::throw_if_bad_token(label(), [&] { return partial_name(l); },
                                   ops::depth_attention_merge_normed(Backend{}, stats(c, l, h), c.partial_now, T(cfg_.norm_eps),
                                                                     inv_rms, p.at(l), h, c.alpha[l - 1].mat()));
      }
    }
    if (keep) c.h[l - 1].keep(const_view_t(h));
  }

  // Decoding: asks the caches for what gather(l) will read (w_l, g_l, the block sums, the
  // partial sum and their 1/r) and write (α). A decode step streams ≈ 26 MB of weights between
  // two gather points, which leaves none of these in the caches, and a gather's rows are too few
  // for the hardware prefetcher to start on. LM calls this just before a sublayer's output
  // projection, whose few hundred kB per core do not push them out again. Measured in a model
  // at 2 threads: the policy's share of a decode step 1.3–2.0 % → 0.94–1.30 % (bench_overhead
  // decode, docs/performance.md round 18). A no-op outside decoding.
  void prefetch(const Params& p, const Cache& c, int l) const {
    if (c.seq.keep_for_backward() || c.M > one_shot_max_tokens || l < 1 || l > cfg_.n_sublayers + 1) return;
    detail::prefetch_query(p, l);
    // b_0 .. b_completed: the block the coming push may close is b_completed
    for (std::size_t j = 0; j < c.block.size() && j <= static_cast<std::size_t>(c.completed); ++j) {
      detail::prefetch_rows(c.block[j].mat());
      detail::prefetch<T, space>(c.block_inv_rms[j].data(), c.M);
    }
    detail::prefetch_rows(c.partial.mat());
    detail::prefetch<T, space>(c.partial_inv_rms.data(), c.M);
    if (static_cast<std::size_t>(l) <= c.alpha.size()) detail::prefetch_rows(c.alpha[l - 1].mat());
  }

  // b_n^{i+1} = b_n^i + v, written where its reader will look: the next gather point's slot
  // (training), the running buffer (inference), or b_n itself after the block's last sublayer,
  // which closes the block: b_n becomes a source, with its key-norm statistic.
  void push(Cache& c, int l, const_view_t v /*(M,D)*/) const {
    c.seq.push(l);
    detail::check_view<T>(label(), "sublayer output", c.M, cfg_.d_model, v);
    const view_t out = push_slot(c, l).mat();
    const bool last = (l - 1) % S_ == S_ - 1;
    const int j = c.completed;
    T* const inv_rms = c.block_inv_rms[static_cast<std::size_t>(j)].data();
    index_t bad = -1;  // NaN/Inf in v shows up in the statistic of the partial or block sum it joins
    if (!c.has_partial) {
      if (v.data != out.data || v.stride != out.stride) copy(v, out);  // else the caller wrote it there
      if (last) bad = ops::key_norm_stats(Backend{}, const_view_t(out), T(cfg_.norm_eps), inv_rms);
    } else if (last) {
      bad = ops::sum_key_norm_stats(Backend{}, c.partial_now, v, out, T(cfg_.norm_eps), inv_rms);  // one pass
    } else {
      sum_to(c.partial_now, v, out);
    }
    c.has_partial = !last;
    c.partial_now = out;
    if (!last) return;  // the partial's statistic is taken by the gather that reads it (the merge)
    detail::throw_if_bad_token(label(), [&] {
      return "block sum b_" + std::to_string(j) + " (last added: the output of sublayer " + std::to_string(l) + ")";
    }, bad);
    c.completed = j + 1;
  }

  // Where a caller may write v_l after gather(l), before push(l): at a block's first sublayer
  // b_n^1 = v_l (b_n itself when S = 1), so the slot push(l) would copy v_l into. Later sublayers
  // of a block add v_l to the partial sum: no slot.
  tensor_t* source_buffer(Cache& c, int l) const {
    if (l < 1 || l > cfg_.n_sublayers || (l - 1) % S_ != 0 || c.has_partial || c.block.empty()) return nullptr;
    return &push_slot(c, l);
  }

  void begin_backward(Cache& c) const {
    c.seq.begin_backward();
    const index_t M = c.M, D = cfg_.d_model;
    // Nothing is zeroed: the output's backward writes ∂ℒ/∂b_N and the last block's batched
    // pass the other ∂ℒ/∂b_j, and dpartial is first read after source_grad has swapped a
    // block's gradient into it.
    c.dblock.resize(N + 1);
    for (auto& d : c.dblock)
      if (d.rows() != M) d = tensor_t({M, D});
    if (c.dpartial.rows() != M) c.dpartial = tensor_t({M, D});
    if (c.dh_out.rows() != M) c.dh_out = tensor_t({M, D});
    c.dh_block.resize(static_cast<std::size_t>(G_ * S_));
    c.c_block.resize(c.dh_block.size());
    for (std::size_t p = 0; p < c.dh_block.size(); ++p) {
      if (c.dh_block[p].rows() != M) c.dh_block[p] = tensor_t({M, D});
      if (c.c_block[p].size() != M) c.c_block[p] = tensor_t({M});
    }
  }

  // dh_dot_h (M) or null: c = dh·h from the caller (residual_policy.hpp)
  void gather_backward(const Params& p, Cache& c, int l, const_view_t dh /*(M,D)*/, Grads& g,
                       const T* dh_dot_h = nullptr) const {
    c.seq.gather_backward(l);
    detail::check_view<T>(label(), "gradient dh", c.M, cfg_.d_model, dh);
    const int L = cfg_.n_sublayers;
    if (l == L + 1) {
      // The output reads b_0..b_N. Only b_N's gradient is done here (b_N has no other reader);
      // its terms for b_0..b_{N-1} join the last block's batched pass, which reads those
      // sources anyway, instead of a pass of their own.
      if (c.c_out.size() != c.M) c.c_out = tensor_t({c.M});
      detail::upstream_dots(Backend{}, label(), l, c.h[l - 1], dh, dh_dot_h, c.c_out.data());
      keep_upstream(dh, c.dh_out);
      c.points.assign(1, query_grad(p, g, c, l, c.alpha[l - 1].mat().middle_rows(N, 1), c.c_out.data(), dh));
      const view_t db = c.dblock[N].mat();
      // the first gradient of b_N: written, not added (begin_backward zeroes nothing)
      ops::depth_attention_backward(Backend{}, completed_sources(c).subspan(N, 1),
                                    std::span<const ops::depth_query_grad<T, space>>(c.points), std::span<const view_t>(&db, 1),
                                    ops::grad_write::overwrite);
      return;
    }
    const int i = (l - 1) % S_;
    const int n = (l - 1) / S_ + 1;  // completed blocks b_0..b_{n-1} are this block's inter sources
    const std::size_t k = slot(n, i);
    // kept for a batched Phase-1 backward; already there if the caller wrote it into
    // gradient_buffer(c, l)
    keep_upstream(dh, c.dh_block[k]);
    detail::upstream_dots(Backend{}, label(), l, c.h[l - 1], dh, dh_dot_h, c.c_block[k].data());
    if (i > 0) {  // Phase 2 backward: the partial source, needed next by this block's sublayers
      const ops::depth_source<T, space> part{c.partial_at[l - 1].mat(), c.partial_at_inv_rms[l - 1].data()};
      const auto a = c.alpha[l - 1].mat().middle_rows(n, 1);
      c.points.assign(1, query_grad(p, g, c, l, a, c.c_block[k].data(), dh));
      const view_t dpart = c.dpartial.mat();
      ops::depth_attention_backward(Backend{}, std::span<const ops::depth_source<T, space>>(&part, 1),
                                    std::span<const ops::depth_query_grad<T, space>>(c.points),
                                    std::span<const view_t>(&dpart, 1));
      return;
    }
    // Phase 1 backward, batched: the completed-block terms of the points of blocks n .. hi of
    // this block's group (see the top of the file). Above the group's lowest block only b_{n-1}
    // is due (block n-1's sublayers need its gradient next); the lowest does b_0 .. b_{lo-1}.
    const int hi = group_top(n), lo = std::max(1, hi - G_ + 1);
    const int j0 = n > lo ? n - 1 : 0;
    const index_t count = n - j0;
    c.points.clear();
    for (int m = n; m <= hi; ++m)
      for (int q = 0; q < S_; ++q) {
        const int lq = (m - 1) * S_ + 1 + q;
        const auto a = c.alpha[lq - 1].mat().middle_rows(j0, count);
        const std::size_t kq = slot(m, q);
        c.points.push_back(query_grad(p, g, c, lq, a, c.c_block[kq].data(), c.dh_block[kq].mat()));
        c.points.back().logits = logits_of(c, lq).middle_rows(j0, count);  // Phase 1's, kept
      }
    // The top group's passes also carry the output's terms for b_0..b_{N-1} (its b_N term was
    // done on its own), and are the first to reach those gradients: written, not added.
    const bool top = hi == N;
    if (top)
      c.points.push_back(query_grad(p, g, c, L + 1, c.alpha[L].mat().middle_rows(j0, count), c.c_out.data(), c.dh_out.mat()));
    ops::depth_attention_backward(Backend{}, completed_sources(c).subspan(static_cast<std::size_t>(j0), static_cast<std::size_t>(count)),
                                  std::span<const ops::depth_query_grad<T, space>>(c.points), dblock_views(c, j0, n),
                                  top ? ops::grad_write::overwrite : ops::grad_write::accumulate);
  }

  // Where a caller may write dh_l before gather_backward(l) (after begin_backward): the slot
  // a later batched backward reads (the block's Phase-1 pass; the last block's, for the
  // output's), so that it needs no copy of dh_l.
  tensor_t* gradient_buffer(Cache& c, int l) const {
    if (l < 1 || l > cfg_.n_sublayers + 1 || c.dh_block.size() != static_cast<std::size_t>(G_ * S_)) return nullptr;
    if (l == cfg_.n_sublayers + 1) return &c.dh_out;
    return &c.dh_block[slot((l - 1) / S_ + 1, (l - 1) % S_)];
  }

  // ∂ℒ/∂v_l: the gradient of the block sum v_l belongs to, plus the partial-sum gradients of
  // the later positions of the same block (accumulated in dpartial as the backward walks back).
  void source_grad(Cache& c, int l, view_t dv /*(M,D)*/) const {
    c.seq.source_grad(l);
    detail::check_view<T>(label(), "source gradient", c.M, cfg_.d_model, dv);
    if (l == 0) {
      copy(c.dblock[0].mat(), dv);
      return;
    }
    // The last sublayer of block n starts the block's running gradient at ∂ℒ/∂b_n, which is
    // complete here (every later gather point has run its backward) and not read again.
    if ((l - 1) % S_ == S_ - 1) std::swap(c.dblock[(l - 1) / S_ + 1], c.dpartial);
    copy(c.dpartial.mat(), dv);
  }

  const_view_t depth_weights(const Cache& c, int l) const {
    expects<usage_error>(l >= 1 && l <= cfg_.n_sublayers + 1 && static_cast<std::size_t>(l) <= c.alpha.size(),
                         label(), ": no depth weights for gather point ", l);
    return c.alpha[l - 1].mat();
  }

 private:
  // "BlockAttnRes<N>", spelled at compile time: every gather and push passes it to its checks.
  static constexpr auto label_text = [] {
    std::array<char, 32> text{};
    std::size_t k = 0;
    for (char ch : std::string_view("BlockAttnRes<")) text[k++] = ch;
    char digits[12];
    int count = 0;
    for (int v = N; v > 0; v /= 10) digits[count++] = static_cast<char>('0' + v % 10);
    while (count > 0) text[k++] = digits[--count];
    text[k++] = '>';
    return std::pair{text, k};
  }();
  static constexpr std::string_view label() { return {label_text.first.data(), label_text.second}; }

  std::string partial_name(int l) const {
    return "the partial sum of block " + std::to_string((l - 1) / S_ + 1) + " (last added: the output of sublayer " +
           std::to_string(l - 1) + ")";
  }

  // Where push(l) writes b_n^{i+1}: b_n itself after the block's last sublayer, else the next
  // gather point's slot (training) or the running buffer (inference).
  tensor_t& push_slot(Cache& c, int l) const {
    if ((l - 1) % S_ == S_ - 1) return c.block[static_cast<std::size_t>(c.completed)];
    return c.seq.keep_for_backward() ? c.partial_at[static_cast<std::size_t>(l)] : c.partial;
  }

  std::span<const ops::depth_source<T, space>> completed_sources(Cache& c) const {
    return std::span<const ops::depth_source<T, space>>(c.block_sources).first(static_cast<std::size_t>(c.completed));
  }

  // Phase-1 statistics of gather point l (position i of its block). The block's first point
  // reads no partial sum, so its merge would only scale o by 1/ℓ: Phase 1 writes o normalised
  // straight into its output h (depth_stats::normalized), and the merge then writes α only.
  ops::depth_stats<T, space> stats(Cache& c, int l, view_t h) const {
    const int n = c.completed, i = (l - 1) % S_;
    const view_t o = i == 0 ? h : c.stat_o[i].mat();
    return {o, c.stat_m[i].data(), c.stat_l[i].data(), logits_of(c, l).middle_rows(0, n), i == 0};
  }

  view_t logits_of(Cache& c, int l) const {
    return c.stat_logits[static_cast<std::size_t>(c.seq.keep_for_backward() ? l - 1 : (l - 1) % S_)].mat();
  }

  // Phase 1: statistics of the S gather points l .. l+S-1 over the completed blocks; h is
  // gather point l's output.
  void phase1(const Params& p, Cache& c, int l, view_t h) const {
    c.queries.clear();
    c.stats.clear();
    for (int q = 0; q < S_; ++q) {
      c.queries.push_back(p.at(l + q));
      c.stats.push_back(stats(c, l + q, h));
    }
    ops::depth_attention_stats(Backend{}, completed_sources(c), std::span<const ops::depth_query<T>>(c.queries),
                               std::span<const ops::depth_stats<T, space>>(c.stats));
  }

  ops::depth_query_grad<T, space> query_grad(const Params& p, Grads& g, Cache& c, int l, const_view_t alpha,
                                             const T* cvec, const_view_t dh) const {
    return detail::query_grad(cfg_, p, g, c.unused_dg, l, alpha, cvec, dh);
  }

  // Keeps dh in its slot for a later batched pass: a copy, unless the caller wrote it there
  // (gradient_buffer).
  static void keep_upstream(const_view_t dh, tensor_t& slot) {
    if (dh.data != slot.data() || dh.stride != slot.cols()) copy(dh, slot.mat());
  }

  static std::span<const view_t> dblock_views(Cache& c, int j0, int j1) {
    c.dsources.clear();
    for (int j = j0; j < j1; ++j) c.dsources.push_back(c.dblock[j].mat());
    return c.dsources;
  }

  // Backward groups are counted from the top: blocks N-G+1 .. N, then the G below, … (the
  // lowest group may be smaller). group_top(n) is the highest block of block n's group.
  int group_top(int n) const { return N - (N - n) / G_ * G_; }
  // The dh and c slot of the point at position i of block n: its place within the group.
  std::size_t slot(int n, int i) const { return static_cast<std::size_t>((group_top(n) - n) * S_ + i); }

  residual_config cfg_;
  int S_ = 1;
  int G_ = 1;  // blocks per backward group
};

}  // namespace attnres
