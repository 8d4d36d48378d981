#pragma once
// depth_diagnostics — what the depth dimension of a model looks like during one pass: the
// depth-attention weights α of every gather point, the size of every sublayer's input and
// output, and the gradient reaching every sublayer output. The numbers behind the paper's
// Fig. 5 (b, c) and Fig. 8.
//
// Use it from your own experiment:
//
//   attnres::depth_diagnostics diag;             // diag.per_token_alpha = true for α per token
//   model.set_diagnostics(&diag);                // every pass now appends one record
//   diag.step = 1000;                            // a label copied into the records that follow
//   model.forward_backward(tokens, targets, B, T);
//   model.set_diagnostics(nullptr);              // detached: the model pays one pointer check
//   const auto& r = diag.records.back();
//   r.points[l - 1].alpha_mean[j]                // mean α of source j at gather point l
//   r.sources[l].output_rms, r.sources[l].grad_norm
//
// Numbering follows the residual contract (residual/residual_policy.hpp): source 0 is the
// embedding x0, source l (1..L) is the output v_l of sublayer l; gather point l (1..L) makes
// h_l, the input of sublayer l, and gather point L+1 the stack output (before the final norm).
// Which sources a gather point mixes depends on the policy: FullAttnRes mixes v_0..v_{l-1},
// BlockAttnRes<N> the block sums [b_0 .. b_{n-1}] plus the current block's partial sum (the
// order of `policy.depth_weights`), and Sum keeps one stream with fixed unit weights — for
// Sum every α field stays empty / NaN.
//
// What one record holds (M = batch·T tokens of the pass, D the model width):
//
//   points[l-1]   gather point l = 1 .. L+1
//     input_rms          sqrt(mean over (M,D) of h_l²)        the "hidden state" size
//     alpha_mean[j]      (1/M) Σ_t α_j(t)                     j over the sources of l; sums to 1
//     entropy            (1/M) Σ_t −Σ_j α_j(t) ln α_j(t)      nats; ln n for uniform α
//     effective_sources  exp(entropy)                         n for uniform α, 1 for one-hot
//     alpha_tokens       (n_sources, M) row-major copy of α   only when per_token_alpha
//   sources[j]    source j = 0 .. L (0: the embedding x0, l: the output v_l of sublayer l)
//     output_rms         sqrt(mean over (M,D) of v_j²)
//     grad_norm          ‖∂ℒ/∂v_j‖ over all (M,D) entries (Frobenius); NaN after a forward-only
//                        pass. ∂ℒ/∂v_j is the total gradient reaching the source (every later
//                        gather point that reads it), as the policy's source_grad returns it,
//                        for the loss as the model computed it (mean over tokens, times the
//                        grad_scale passed to forward_backward).
//
// Cost when attached: one pass over each (M,D) activation for the RMS and norms, plus O(n·M)
// per gather point for α. Statistics are accumulated in double.
//
// The hooks (begin_pass, on_gather, on_source, on_source_grad) are what LM calls; a stack
// loop written by hand can call them in the same places (gather → on_gather, push → on_source,
// source_grad → on_source_grad).

#include <attnres/core/error.hpp>
#include <attnres/core/tensor.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

namespace attnres {

namespace detail {
inline constexpr double diag_nan = std::numeric_limits<double>::quiet_NaN();
}

struct depth_diagnostics {
  struct gather_point {
    int l = 0;                                    // 1 .. L+1
    double input_rms = detail::diag_nan;          // RMS of h_l
    std::vector<double> alpha_mean;               // (n_sources); empty for Sum
    double entropy = detail::diag_nan;            // nats, mean over tokens; NaN for Sum
    double effective_sources = detail::diag_nan;  // exp(entropy)
    std::vector<float> alpha_tokens;              // (n_sources, M) when per_token_alpha; else empty
    index_t n_sources() const { return static_cast<index_t>(alpha_mean.size()); }
  };
  struct source {
    int j = 0;                              // 0 = embedding, l = output of sublayer l
    double output_rms = detail::diag_nan;   // RMS of v_j
    double grad_norm = detail::diag_nan;    // ‖∂ℒ/∂v_j‖_F; NaN without a backward pass
  };
  struct record {
    std::int64_t step = 0;              // the recorder's `step` when the pass began
    index_t tokens = 0;                 // M = batch·T
    int n_sublayers = 0;                // L
    std::vector<gather_point> points;   // L+1, index l-1
    std::vector<source> sources;        // L+1, index j
  };

  bool per_token_alpha = false;  // also keep α of every token (n_sources × M floats per point)
  std::int64_t step = 0;         // label for the records that follow (set it before a pass)
  std::vector<record> records;   // one per forward pass while attached

  void clear() { records.clear(); }
  const record& last() const {
    expects<usage_error>(!records.empty(), "depth_diagnostics: nothing recorded yet (attach it with "
                                           "model.set_diagnostics(&diag) and run a pass)");
    return records.back();
  }

  // ---- hooks -------------------------------------------------------------------------------
  // A forward pass over M tokens through L sublayers starts a new record.
  void begin_pass(int n_sublayers, index_t tokens) {
    expects<usage_error>(n_sublayers >= 1 && tokens >= 1, "depth_diagnostics: a pass needs L ≥ 1 and M ≥ 1, got L = ",
                         n_sublayers, ", M = ", tokens);
    record r;
    r.step = step;
    r.tokens = tokens;
    r.n_sublayers = n_sublayers;
    r.points.resize(static_cast<std::size_t>(n_sublayers) + 1);
    r.sources.resize(static_cast<std::size_t>(n_sublayers) + 1);
    for (int l = 1; l <= n_sublayers + 1; ++l) r.points[l - 1].l = l;
    for (int j = 0; j <= n_sublayers; ++j) r.sources[j].j = j;
    records.push_back(std::move(r));
  }

  // Gather point l produced h (M,D) with weights alpha (n_sources, M); alpha is empty for Sum.
  template <class T>
  void on_gather(int l, const_matrix_view<T> h, const_matrix_view<T> alpha) {
    gather_point& g = current().points.at(checked_point(l));
    g.input_rms = rms(h);
    if (alpha.empty()) return;
    expects<shape_error>(alpha.cols == h.rows, "depth_diagnostics: α of gather point ", l, " has ", alpha.cols,
                         " tokens, h has ", h.rows);
    const index_t n = alpha.rows, M = alpha.cols;
    g.alpha_mean.assign(static_cast<std::size_t>(n), 0.0);
    double entropy = 0;
    for (index_t j = 0; j < n; ++j) {
      const T* a = alpha.row(j);  // (M)
      double sum = 0, plogp = 0;
      for (index_t t = 0; t < M; ++t) {
        const double p = static_cast<double>(a[t]);
        sum += p;
        if (p > 0) plogp += p * std::log(p);  // 0 · ln 0 = 0
      }
      g.alpha_mean[static_cast<std::size_t>(j)] = sum / static_cast<double>(M);
      entropy -= plogp;
    }
    g.entropy = entropy / static_cast<double>(M);
    g.effective_sources = std::exp(g.entropy);
    if (per_token_alpha) {
      g.alpha_tokens.resize(static_cast<std::size_t>(n * M));
      for (index_t j = 0; j < n; ++j)
        for (index_t t = 0; t < M; ++t) g.alpha_tokens[static_cast<std::size_t>(j * M + t)] = static_cast<float>(alpha(j, t));
    }
  }

  // Source j (0: the embedding, l: the output of sublayer l) is v (M,D).
  template <class T>
  void on_source(int j, const_matrix_view<T> v) {
    current().sources.at(checked_source(j)).output_rms = rms(v);
  }

  // The backward produced ∂ℒ/∂v_j (M,D).
  template <class T>
  void on_source_grad(int j, const_matrix_view<T> dv) {
    current().sources.at(checked_source(j)).grad_norm = std::sqrt(sum_of_squares(dv));
  }

  // ---- helpers, public for tests and for users' own statistics ------------------------------
  template <class T>
  static double sum_of_squares(const_matrix_view<T> x) {
    double s = 0;
    for (index_t i = 0; i < x.rows; ++i) {
      const T* r = x.row(i);
      for (index_t k = 0; k < x.cols; ++k) s += static_cast<double>(r[k]) * static_cast<double>(r[k]);
    }
    return s;
  }
  template <class T>
  static double rms(const_matrix_view<T> x) {
    if (x.empty()) return detail::diag_nan;
    return std::sqrt(sum_of_squares(x) / static_cast<double>(x.rows * x.cols));
  }

 private:
  record& current() {
    expects<usage_error>(!records.empty(), "depth_diagnostics: a hook was called before begin_pass");
    return records.back();
  }
  std::size_t checked_point(int l) {
    const int L = current().n_sublayers;
    expects<usage_error>(l >= 1 && l <= L + 1, "depth_diagnostics: gather point ", l, " is not in 1..", L + 1);
    return static_cast<std::size_t>(l - 1);
  }
  std::size_t checked_source(int j) {
    const int L = current().n_sublayers;
    expects<usage_error>(j >= 0 && j <= L, "depth_diagnostics: source ", j, " is not in 0..", L);
    return static_cast<std::size_t>(j);
  }
};

}  // namespace attnres
