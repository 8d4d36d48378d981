#pragma once
// Cost model of an LM step: FLOPs per token and the residual streams a policy keeps per token.
// Used to turn measured times into GFLOP/s (bench, ablate) and to check measured memory.
//
// FLOPs (a multiply-add is 2 FLOPs; the usual transformer accounting, e.g. Kaplan et al. 2020):
//   per layer   attention projections  4 · 2·D²           (wq, wk, wv, wo)
//               causal scores + mix    2 · 2·D·(T+1)/2    (q·k and p·v over (T+1)/2 keys on average)
//               MLP                    SwiGLU 3 · 2·D·F, GELU 2 · 2·D·F
//   head        2·D·V
//   depth mix   4·n_l·D at each gather point l (logit and weighted sum over its n_l sources; not
//               for Sum, whose stream is an addition)
//   training    3 × forward (the backward does two products per forward product)
// Norms, activations, softmaxes and the optimizer are O(D) per token and not counted.

#include <attnres/model/config.hpp>

namespace attnres {

// Sources gather point l (1 .. L+1) mixes: Full l; Block the embedding, the completed blocks and
// (when non-empty) the partial sum of the current one; Sum none (its stream is added, not mixed).
inline index_t depth_sources(const architecture& a, int n_sublayers, int l) {
  if (a.residual == "full") return l;
  if (a.residual != "block") return 0;
  const int S = n_sublayers / a.blocks;  // sublayers per block
  const int done = (l - 1) / S;          // blocks completed before sublayer l
  const bool partial = (l - 1) % S != 0;  // the current block already has a sublayer output
  return 1 + done + (partial ? 1 : 0);
}

inline double forward_flops_per_token(const model_config& c, const architecture& a, index_t seq) {
  const double D = static_cast<double>(c.d_model), F = static_cast<double>(c.d_ff);
  const double V = static_cast<double>(c.vocab), T = static_cast<double>(seq);
  const double mlp = (a.mlp == "swiglu" ? 6 : 4) * D * F;
  double fwd = static_cast<double>(c.n_layers) * (8 * D * D + 2 * D * (T + 1) + mlp) + 2 * D * V;
  for (int l = 1; l <= c.n_sublayers() + 1; ++l) fwd += 4 * static_cast<double>(depth_sources(a, c.n_sublayers(), l)) * D;
  return fwd;
}

inline double training_flops_per_token(const model_config& c, const architecture& a, index_t seq) {
  return 3 * forward_flops_per_token(c, a, seq);
}

// Residual streams (vectors of D values) a policy must keep per token while a forward pass is
// running, by the paper's accounting (§4, Table 1): Sum 1 (the running stream), Block N + 1
// (embedding, N block sums; the last is the partial), Full L + 1 (the embedding and every
// sublayer output).
inline index_t residual_streams(const architecture& a, int n_sublayers) {
  if (a.residual == "full") return n_sublayers + 1;
  if (a.residual == "block") return a.blocks + 1;
  return 1;
}

}  // namespace attnres
