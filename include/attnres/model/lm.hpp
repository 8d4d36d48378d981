#pragma once
// LM — a decoder-only language model whose residual connection is a compile-time policy:
//
//   x0      = tok_embeddings[tokens]                                   (M,D), M = batch·T
//   for each transformer layer i (sublayers l = 2i+1, 2i+2):
//     h_l   = gather(l)            v_l = attn(attn_norm(h_l))          push(l, v_l)
//     h_l'  = gather(l')           v_l' = mlp(mlp_norm(h_l'))          push(l', v_l')
//   h_out   = gather(L+1)
//   logits  = norm(h_out) · lm_headᵀ        (lm_head = tok_embeddings when tied)
//
// Compile time: Residual (Sum, FullAttnRes, BlockAttnRes<N>), Norm (RMSNorm, LayerNorm),
// MLP (SwiGLU, GELU), Backend, scalar. Run time: every size (model_config).
// Parameters, gradients, activations and KV caches live in the backend's memory space
// (backend_tensor: host tensors for reference/cpu, device tensors for CUDA); the public API takes
// and returns host data (token ids in, logits out), so one orchestration serves every backend.
// Parameter names follow DESIGN.md, so weights move to and from PyTorch (tools/reference/).

#include <attnres/core/backend.hpp>
#include <attnres/core/error.hpp>
#include <attnres/core/parallel.hpp>
#include <attnres/core/random.hpp>
#include <attnres/core/storage.hpp>
#include <attnres/core/tensor.hpp>
#include <attnres/io/safetensors.hpp>
#include <attnres/model/config.hpp>
#include <attnres/model/diagnostics.hpp>
#include <attnres/nn/attention.hpp>
#include <attnres/nn/bf16_weights.hpp>
#include <attnres/nn/layer_norm.hpp>
#include <attnres/nn/mlp.hpp>
#include <attnres/nn/parameter.hpp>
#include <attnres/nn/rms_norm.hpp>
#include <attnres/ops/cross_entropy.hpp>
#include <attnres/ops/embedding.hpp>
#include <attnres/ops/linear.hpp>
#include <attnres/residual/block_attn_res.hpp>
#include <attnres/residual/full_attn_res.hpp>
#include <attnres/residual/residual_policy.hpp>
#include <attnres/residual/sum.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace attnres {

namespace detail {
template <class Residual>
constexpr int residual_blocks(int n_sublayers) {
  if constexpr (requires { Residual::blocks; })
    return Residual::blocks;
  else if constexpr (std::is_same_v<Residual, FullAttnRes>)
    return n_sublayers;
  else
    return 0;
}

// A layer's bf16 weights for decoding (nn/bf16_weights.hpp); for a layer without them, an empty
// type that keeps LM::bf16_decode_weights declarable (such a model never fills it:
// has_bf16_decoding is false and start_decode refuses).
struct no_bf16_params {};
template <class Layer>
struct bf16_params_of {
  using type = no_bf16_params;
};
template <class Layer>
  requires requires { typename Layer::Bf16Params; }
struct bf16_params_of<Layer> {
  using type = typename Layer::Bf16Params;
};
template <class Layer>
using bf16_params_t = typename bf16_params_of<Layer>::type;

// LM::decode_step runs a batch of ≤ 4 tokens on a spinning team (core/parallel.hpp) on the cpu.
// A variable, so that tests and benchmarks can compare it with an OpenMP fork and join per loop.
inline bool decode_on_spinning_team = true;
}  // namespace detail

template <class Residual = BlockAttnRes<4>, class Norm = RMSNorm, class MLP = SwiGLU, class Backend = default_backend,
          class T = float>
  requires ResidualPolicy<Residual>
class LM {
 public:
  using scalar = T;
  using backend = Backend;
  using residual_type = Residual;
  using policy_t = typename Residual::template with<T, Backend>;
  using norm_t = typename Norm::template with<T, Backend>;
  using mlp_t = typename MLP::template with<T, Backend>;
  using attn_t = causal_self_attention<T, Backend>;
  using space = typename backend_traits<Backend>::memory_space;
  using tensor_t = backend_tensor<T, Backend>;
  using view_t = matrix_view<T, space>;
  using const_view_t = const_matrix_view<T, space>;

  struct layer_params {
    typename norm_t::Params attn_norm;
    typename attn_t::Params attn;
    typename norm_t::Params mlp_norm;
    typename mlp_t::Params mlp;
  };
  // Parameters and gradients share one layout (the residual policy names its two parts).
  template <class ResidualPart>
  struct model_tensors {
    tensor_t tok_embeddings;  // (V,D)
    std::vector<layer_params> layers;
    typename norm_t::Params norm;
    tensor_t lm_head;  // (V,D); empty when tied to tok_embeddings
    ResidualPart residual;
  };
  using Params = model_tensors<typename policy_t::Params>;
  using Grads = model_tensors<typename policy_t::Grads>;

  Params params;
  Grads grads;

  explicit LM(model_config cfg)
      : cfg_((cfg.validate(), cfg)),
        policy_({.n_sublayers = cfg.n_sublayers(), .d_model = cfg.d_model, .norm_eps = cfg.norm_eps}),
        norm_(cfg.d_model, cfg.norm_eps),
        attn_(cfg.d_model, cfg.n_heads, cfg.rope_theta),
        mlp_(cfg.d_model, cfg.d_ff) {
    require_available(space{}, "LM<..., backend::cuda>");  // no device: one clear error before the first allocation
    params = make_params<Params>(false);
    grads = make_params<Grads>(true);
  }

  const model_config& config() const { return cfg_; }
  architecture arch() const {
    return {std::string(Residual::name), detail::residual_blocks<Residual>(cfg_.n_sublayers()), std::string(MLP::name),
            std::string(Norm::name)};
  }
  const policy_t& residual() const { return policy_; }
  const typename policy_t::Cache& residual_cache() const { return act_.rcache; }

  // Attaches a depth_diagnostics recorder (model/diagnostics.hpp): every forward pass
  // (forward_backward, loss, forward, prefill) then appends one record, and the backward fills
  // its gradient norms. nullptr detaches; a detached model pays one pointer check per hook.
  // The recorder is not owned and must outlive its attachment.
  // Diagnostics read every source and α on the host: refused on a device backend (use
  // depth_weights(l) after a forward there, or record diagnostics with backend::cpu).
  void set_diagnostics(depth_diagnostics* d) {
    expects<usage_error>(on_host || d == nullptr, "LM<", describe(arch()), ", backend::", Backend::name,
                         ">: depth diagnostics read every source and α on the host and are not supported on a "
                         "device backend; call depth_weights(l) after a forward, or record them with backend::cpu");
    diag_ = d;
  }
  depth_diagnostics* diagnostics() const { return diag_; }
  int n_sublayers() const { return cfg_.n_sublayers(); }

  // α of gather point l (n_sources(l), M) from the last forward pass, as a host copy (empty for Sum).
  tensor<T> depth_weights(int l) const {
    const const_view_t a = policy_.depth_weights(act_.rcache, l);
    tensor<T> out({a.rows, a.cols});
    if (!a.empty()) copy_to_host(space{}, a.data, out.data(), a.rows * a.cols);  // α rows are contiguous
    return out;
  }

  // Every parameter with its DESIGN.md name, its gradient and whether AdamW decays it. The
  // pointers are in the backend's memory space (device pointers for CUDA).
  param_list<T, space> parameters() {
    param_list<T, space> out;
    const index_t V = cfg_.vocab, D = cfg_.d_model;
    out.push_back({"tok_embeddings.weight", {V, D}, params.tok_embeddings.data(), grads.tok_embeddings.data(), true});
    for (index_t i = 0; i < cfg_.n_layers; ++i) {
      const std::string p = "layers." + std::to_string(i) + ".";
      auto& lp = params.layers[i];
      auto& lg = grads.layers[i];
      norm_.list(p + "attn_norm.", lp.attn_norm, lg.attn_norm, out);
      attn_.list(p + "attn.", lp.attn, lg.attn, out);
      norm_.list(p + "mlp_norm.", lp.mlp_norm, lg.mlp_norm, out);
      mlp_.list(p + "mlp.", lp.mlp, lg.mlp, out);
      if constexpr (has_residual_params) {
        for (int which = 0; which < 2; ++which) {
          const int l = static_cast<int>(2 * i) + 1 + which;  // gather point
          const std::string r = p + (which == 0 ? "attn_res." : "mlp_res.");
          list_residual_row(r, l, out);
        }
      }
    }
    norm_.list("norm.", params.norm, grads.norm, out);
    if (!cfg_.tie_embeddings) out.push_back({"lm_head.weight", {V, D}, params.lm_head.data(), grads.lm_head.data(), true});
    if constexpr (has_residual_params) list_residual_row("out_res.", cfg_.n_sublayers() + 1, out);
    return out;
  }

  // Initialisation: N(0, 0.02) for embeddings and linear weights, norm gains 1, biases 0, and
  // the residual policy's own (pseudo-queries 0, key-norm gains 1).
  void init_weights(std::uint64_t seed) {
    params = make_params<Params>(false);
    rng gen(seed);
    for (auto& p : parameters()) {
      if (!p.decay) continue;  // norm gains, biases, queries keep their structural init
      tensor<T> init({p.size()});  // drawn on the host (one RNG stream for every backend), then placed
      for (index_t i = 0; i < p.size(); ++i) init[i] = static_cast<T>(0.02 * gen.normal());
      copy_from_host(space{}, init.data(), p.value, p.size());
    }
  }

  void zero_grad() {
    for (auto& p : parameters()) fill_n(space{}, p.grad, p.size(), T(0));
  }

  // Mean next-token cross-entropy over batch·T positions; gradients *accumulate* into grads,
  // scaled by grad_scale (1/accumulation steps for gradient accumulation).
  double forward_backward(std::span<const std::int32_t> tokens, std::span<const std::int32_t> targets, index_t batch,
                          index_t seq, double grad_scale = 1.0) {
    check_tokens(tokens, batch, seq);
    expects<shape_error>(static_cast<index_t>(targets.size()) == batch * seq, "LM: ", targets.size(),
                         " targets for batch × T = ", batch * seq, " positions");
    const std::int32_t* ids = ids_in_space(tokens, act_.tokens);
    run_forward(ids, batch, seq, true, nullptr);
    auto& a = act_;
    ensure(a.dlogits, batch * seq, cfg_.vocab);
    const double loss =
        ops::cross_entropy(Backend{}, a.logits.mat(), ids_in_space(targets, a.targets), a.dlogits.mat(), T(grad_scale));
    expects<numeric_error>(std::isfinite(loss), "LM: the loss is not finite (", loss, ")");
    run_backward(ids);
    return loss;
  }

  // Mean cross-entropy without gradients (evaluation).
  double loss(std::span<const std::int32_t> tokens, std::span<const std::int32_t> targets, index_t batch, index_t seq) {
    check_tokens(tokens, batch, seq);
    expects<shape_error>(static_cast<index_t>(targets.size()) == batch * seq, "LM: ", targets.size(),
                         " targets for batch × T = ", batch * seq, " positions");
    run_forward(ids_in_space(tokens, act_.tokens), batch, seq, false, nullptr);
    return ops::cross_entropy(Backend{}, act_.logits.mat(), ids_in_space(targets, act_.targets), view_t{}, T(1));
  }

  // Logits (batch·T, V) of every position (host memory, valid until the next call).
  const_matrix_view<T> forward(std::span<const std::int32_t> tokens, index_t batch, index_t seq) {
    check_tokens(tokens, batch, seq);
    run_forward(ids_in_space(tokens, act_.tokens), batch, seq, false, nullptr);
    return on_host_view(act_.logits, act_.host_logits);
  }

  // ---- generation with a KV cache -------------------------------------------------------
  // The weight matrices rounded to bf16 (nn/bf16_weights.hpp): what decode_step multiplies with
  // when the state was started with decode_weights::bf16.
  struct bf16_decode_weights {
    std::vector<detail::bf16_params_t<attn_t>> attn_layers;  // one per transformer layer
    std::vector<detail::bf16_params_t<mlp_t>> mlp_layers;
    tensor<bf16> head;  // (V,D)
    const auto& attn(index_t i) const { return attn_layers[static_cast<std::size_t>(i)]; }
    const auto& mlp(index_t i) const { return mlp_layers[static_cast<std::size_t>(i)]; }
    const_matrix_view<bf16> head_weight() const { return head.mat(); }
  };
  // Whether this model can decode with bf16 weights: a float model in host memory whose
  // attention and MLP have bf16 weights (the built-in ones do).
  static constexpr bool has_bf16_decoding =
      detail::bf16_decodable<T, space> &&
      requires(const attn_t& a, const mlp_t& m, const typename attn_t::Params& pa, const typename mlp_t::Params& pm) {
        a.to_bf16(pa, std::string());
        m.to_bf16(pm, std::string());
      };

  struct decode_state {
    index_t batch = 0, capacity = 0, pos = 0;
    std::vector<kv_cache_layer<T, space>> kv;  // one per transformer layer
    // decode_weights::bf16: the weights rounded to bf16 when the state was started (a snapshot:
    // later changes to the model's weights do not reach it); null: the model's own weights
    std::shared_ptr<const bf16_decode_weights> bf16;
  };

  // A KV cache for `capacity` positions of `batch` sequences. With decode_weights::bf16 the
  // decode steps multiply with bf16 copies of the weight matrices, made here (prefill still uses
  // the float weights): decoding reads half the bytes per token. Throws usage_error where the
  // model cannot (has_bf16_decoding), numeric_error naming a weight with no finite bf16 value.
  decode_state start_decode(index_t batch, index_t capacity, decode_weights weights = decode_weights::f32) const {
    expects<usage_error>(batch >= 1 && capacity >= 1, "LM: decoding needs batch ≥ 1 and capacity ≥ 1");
    decode_state s{batch, capacity, 0, {}, nullptr};
    if (weights == decode_weights::bf16) s.bf16 = std::make_shared<const bf16_decode_weights>(make_bf16_decode_weights());
    for (index_t i = 0; i < cfg_.n_layers; ++i)
      s.kv.push_back({tensor_t({batch, capacity, cfg_.d_model}), tensor_t({batch, capacity, cfg_.d_model})});
    return s;
  }

  // Runs the prompt (batch, T) through the model, filling the KV cache; returns the logits of
  // every prompt position (batch·T, V).
  const_matrix_view<T> prefill(decode_state& s, std::span<const std::int32_t> tokens, index_t seq) {
    expects<usage_error>(s.pos == 0, "LM: prefill on a decode state that already holds ", s.pos, " positions");
    expects<usage_error>(seq <= s.capacity, "LM: a prompt of ", seq, " tokens exceeds the decode capacity ", s.capacity);
    check_tokens(tokens, s.batch, seq);
    run_forward(ids_in_space(tokens, act_.tokens), s.batch, seq, false, &s);
    s.pos = seq;
    return on_host_view(act_.logits, act_.host_logits);
  }

  // One new token per sequence (batch): returns its logits (batch, V). The depth sources of
  // the residual policy are per token and live only for this step.
  const_matrix_view<T> decode_step(decode_state& s, std::span<const std::int32_t> tokens) {
    expects<usage_error>(s.pos < s.capacity, "LM: the decode state is full (", s.capacity, " positions)");
    check_tokens(tokens, s.batch, 1);
    if (s.bf16) {  // a state from start_decode(…, bf16) of a model like this one
      expects<usage_error>(has_bf16_decoding, "LM: this model cannot decode with bf16 weights (see start_decode)");
      expects<usage_error>(s.bf16->attn_layers.size() == static_cast<std::size_t>(cfg_.n_layers) &&
                               s.bf16->mlp_layers.size() == static_cast<std::size_t>(cfg_.n_layers),
                           "LM: the decode state holds bf16 weights of ", s.bf16->attn_layers.size(),
                           " layers, but the model has ", cfg_.n_layers);
    }
    // A few tokens make ≈ 5 short parallel loops a layer (matrix-vector products, the attention
    // over the cache): on the cpu they go to a team of threads kept spinning for the whole step,
    // which hands a loop out in a fraction of an OpenMP fork and join (core/parallel.hpp).
    bool on_team = false;
    if constexpr (backend_traits<Backend>::is_parallel && std::is_same_v<space, host_space>)
      on_team = s.batch <= ops::linear_detail::gemv_max_rows && detail::decode_on_spinning_team;
    auto run = [&] {
      if (!s.bf16) {
        decode_layers(s, tokens, float_decode_weights{*this});
      } else {
        if constexpr (has_bf16_decoding) decode_layers(s, tokens, *s.bf16);
      }
    };
    if (on_team)
      with_spinning_team(run);
    else
      run();
    ++s.pos;
    return on_host_view(dec_.logits, dec_.host_logits);
  }

 private:
  // The model's own weights, as decode_layers reads them (bf16_decode_weights has the same calls).
  struct float_decode_weights {
    const LM& m;
    const auto& attn(index_t i) const { return m.params.layers[static_cast<std::size_t>(i)].attn; }
    const auto& mlp(index_t i) const { return m.params.layers[static_cast<std::size_t>(i)].mlp; }
    const_view_t head_weight() const { return m.head_weight(); }
  };

  bf16_decode_weights make_bf16_decode_weights() const {
    if constexpr (!has_bf16_decoding) {
      throw usage_error("LM<" + describe(arch()) + ", backend::" + std::string(Backend::name) +
                        ">: decoding with bf16 weights needs a float model in host memory (the cpu or reference "
                        "backend) whose attention and MLP have bf16 weights (Bf16Params and to_bf16, as SwiGLU "
                        "and GELU have)");
    } else {
      bf16_decode_weights w;
      for (index_t i = 0; i < cfg_.n_layers; ++i) {
        const std::string p = "layers." + std::to_string(i) + ".";
        w.attn_layers.push_back(attn_.to_bf16(params.layers[i].attn, p + "attn."));
        w.mlp_layers.push_back(mlp_.to_bf16(params.layers[i].mlp, p + "mlp."));
      }
      w.head = cfg_.tie_embeddings ? detail::bf16_copy(params.tok_embeddings, "tok_embeddings.weight")
                                   : detail::bf16_copy(params.lm_head, "lm_head.weight");
      return w;
    }
  }

  // decode_step's work: the logits of one new token per sequence into dec_.logits, with the
  // weight matrices of `w` (float_decode_weights or bf16_decode_weights).
  template <class Weights>
  void decode_layers(decode_state& s, std::span<const std::int32_t> tokens, const Weights& w) {
    auto& d = dec_;
    const index_t M = s.batch, D = cfg_.d_model;
    ensure(d.x0, M, D);
    ensure(d.h, M, D);
    ensure(d.xn, M, D);
    ensure(d.v, M, D);
    ensure(d.y, M, D);
    ensure(d.logits, M, cfg_.vocab);
    ops::embedding_forward(Backend{}, ids_in_space(tokens, d.tokens), M, params.tok_embeddings.mat(), d.x0.mat());
    policy_.begin(d.rcache, d.x0.mat(), false);
    // Before each sublayer's output projection, the policy (if it can) asks the caches for what
    // the next gather point reads: by then the weights streamed since the last token have pushed
    // it out, and the projection's share of weights is small enough not to do so again.
    auto prefetch_gather = [&](int l) {
      return [&, l] {
        if constexpr (requires { policy_.prefetch(params.residual, d.rcache, l); })
          policy_.prefetch(params.residual, d.rcache, l);
        else
          (void)l;  // Sum: nothing to fetch
      };
    };
    for (index_t i = 0; i < cfg_.n_layers; ++i) {
      const int la = static_cast<int>(2 * i + 1), lm = la + 1;
      auto& lp = params.layers[i];
      policy_.gather(params.residual, d.rcache, la, d.h.mat());
      norm_.forward(lp.attn_norm, d.norm_cache, d.h.mat(), d.xn.mat());
      attn_.decode(w.attn(i), d.attn_cache, d.xn.mat(), s.kv[i], s.pos, d.v.mat(), prefetch_gather(lm));
      policy_.push(d.rcache, la, d.v.mat());
      policy_.gather(params.residual, d.rcache, lm, d.h.mat());
      norm_.forward(lp.mlp_norm, d.norm_cache, d.h.mat(), d.xn.mat());
      if constexpr (requires { mlp_.forward(w.mlp(i), d.mlp_cache, d.xn.mat(), d.v.mat(), prefetch_gather(lm + 1)); })
        mlp_.forward(w.mlp(i), d.mlp_cache, d.xn.mat(), d.v.mat(), prefetch_gather(lm + 1));
      else  // an MLP of the user's without the hook
        mlp_.forward(w.mlp(i), d.mlp_cache, d.xn.mat(), d.v.mat());
      policy_.push(d.rcache, lm, d.v.mat());
    }
    policy_.gather(params.residual, d.rcache, n_sublayers() + 1, d.h.mat());
    norm_.forward(params.norm, d.norm_cache, d.h.mat(), d.y.mat());
    ops::linear_forward<T>(Backend{}, d.y.mat(), w.head_weight(), d.logits.mat());
  }

 public:
  // ---- weights in safetensors files (DESIGN.md names and metadata) ------------------------
  void save(const std::filesystem::path& path, const std::map<std::string, std::string>& extra_metadata = {}) {
    io::safetensors_writer w;
    add_to(w, extra_metadata);
    w.save(path);
  }
  void add_to(io::safetensors_writer& w, const std::map<std::string, std::string>& extra_metadata = {}) {
    for (const auto& [k, v] : to_metadata(cfg_, arch())) w.set_metadata(k, v);
    for (const auto& [k, v] : extra_metadata) w.set_metadata(k, v);
    for (const auto& p : parameters()) {
      tensor<T> t(p.shape);
      copy_to_host(space{}, p.value, t.data(), p.size());
      w.add(p.name, t);
    }
  }

  // Loads weights saved for this exact architecture and size. Every tensor must be present
  // with its shape; tensors other than the model's are refused unless their name starts with
  // one of `ignored_prefixes` (e.g. optimizer state stored in the same file).
  void load(const io::safetensors_file& f, const std::vector<std::string>& ignored_prefixes = {}) {
    const auto [cfg, a] = from_metadata(f.metadata(), f.source_name());
    const architecture mine = arch();
    expects<io_error>(a.residual == mine.residual && a.blocks == mine.blocks && a.mlp == mine.mlp && a.norm == mine.norm,
                      f.source_name(), ": the file holds a ", describe(a), " model, but this model is ", describe(mine));
    expects<io_error>(cfg.vocab == cfg_.vocab && cfg.d_model == cfg_.d_model && cfg.n_heads == cfg_.n_heads &&
                          cfg.n_layers == cfg_.n_layers && cfg.d_ff == cfg_.d_ff &&
                          cfg.tie_embeddings == cfg_.tie_embeddings,
                      f.source_name(), ": the file's config does not match this model's sizes");
    std::set<std::string> expected;
    for (auto& p : parameters()) {
      expected.insert(p.name);
      expects<io_error>(f.contains(p.name), f.source_name(), ": missing tensor '", p.name, "'");
      const tensor<T> t = f.get<T>(p.name, p.shape);
      for (index_t i = 0; i < t.size(); ++i)
        expects<io_error>(std::isfinite(static_cast<double>(t[i])), f.source_name(), ": tensor '", p.name,
                          "' contains NaN or Inf");
      copy_from_host(space{}, t.data(), p.value, t.size());
    }
    for (const auto& name : f.names()) {
      if (expected.count(name)) continue;
      bool ignored = false;
      for (const auto& prefix : ignored_prefixes) ignored = ignored || name.rfind(prefix, 0) == 0;
      expects<io_error>(ignored, f.source_name(), ": unexpected tensor '", name, "' (not part of a ", describe(mine),
                        " model)");
    }
  }

  static std::string describe(const architecture& a) {
    std::string s = a.residual;
    if (a.residual == "block") s += "<" + std::to_string(a.blocks) + ">";
    return s + "/" + a.mlp + "/" + a.norm;
  }

 private:
  // Pseudo-queries and key gains to list and save: what the AttnRes policies have (Sum and a
  // user's parameter-free policy have none).
  static constexpr bool has_residual_params = requires(typename policy_t::Params& p) {
    p.query;
    p.key_gain;
  };
  static constexpr bool on_host = std::is_same_v<space, host_space>;
  using ids_t = storage_t<std::int32_t, space>;

  void list_residual_row(const std::string& prefix, int l, param_list<T, space>& out) {
    if constexpr (has_residual_params) {
      const index_t D = cfg_.d_model;
      out.push_back({prefix + "query", {D}, params.residual.query.data() + (l - 1) * D,
                     grads.residual.query.data() + (l - 1) * D, false});
      out.push_back({prefix + "key_norm.weight", {D}, params.residual.key_gain.data() + (l - 1) * D,
                     grads.residual.key_gain.data() + (l - 1) * D, false});
    }
  }

  template <class Tensors>
  Tensors make_params(bool zero) const {
    Tensors p;
    const index_t V = cfg_.vocab, D = cfg_.d_model;
    p.tok_embeddings = tensor_t({V, D});
    for (index_t i = 0; i < cfg_.n_layers; ++i)
      p.layers.push_back({zero ? norm_.zero_grads() : norm_.init_params(), attn_.init_params(),
                          zero ? norm_.zero_grads() : norm_.init_params(), mlp_.init_params()});
    p.norm = zero ? norm_.zero_grads() : norm_.init_params();
    if (!cfg_.tie_embeddings) p.lm_head = tensor_t({V, D});
    if constexpr (std::is_same_v<Tensors, Grads>)
      p.residual = policy_.zero_grads();
    else
      p.residual = policy_.init_params();
    return p;
  }

  const_view_t head_weight() const {
    return cfg_.tie_embeddings ? params.tok_embeddings.mat() : params.lm_head.mat();
  }
  view_t head_grad() { return cfg_.tie_embeddings ? grads.tok_embeddings.mat() : grads.lm_head.mat(); }

  void check_tokens(std::span<const std::int32_t> tokens, index_t batch, index_t seq) const {
    expects<shape_error>(batch >= 1 && seq >= 1, "LM: batch and T must be positive, got ", batch, " and ", seq);
    expects<shape_error>(static_cast<index_t>(tokens.size()) == batch * seq, "LM: ", tokens.size(),
                         " tokens for batch × T = ", batch, " × ", seq);
  }

  static void ensure(tensor_t& t, index_t rows, index_t cols) { detail::ensure_shape(t, rows, cols); }

  // Token ids where the backend reads them: the caller's array on the host; on a device, an
  // upload into `buffer` (the kernels check every id there).
  static const std::int32_t* ids_in_space(std::span<const std::int32_t> ids, ids_t& buffer) {
    if constexpr (on_host) {
      return ids.data();
    } else {
      const auto n = static_cast<index_t>(ids.size());
      if (buffer.size() < n) buffer = ids_t({n});
      copy_from_host(space{}, ids.data(), buffer.data(), n);
      return buffer.data();
    }
  }

  // Logits for the caller, in host memory: the view itself on the host; on a device, a download
  // into `host` (owned by the model, valid until the next call).
  static const_matrix_view<T> on_host_view(const tensor_t& logits, tensor<T>& host) {
    if constexpr (on_host) {
      return logits.mat();
    } else {
      detail::ensure_shape(host, logits.rows(), logits.cols());
      copy_to_host(space{}, logits.data(), host.data(), logits.size());
      return host.mat();
    }
  }

  // Activations of one forward pass, kept for the backward.
  struct sublayer_acts {
    tensor_t h, xn, v;  // (M,D)  gather output, normed input, sublayer output
    typename norm_t::Cache norm_cache;
  };
  struct activations {
    index_t batch = 0, seq = 0;
    ids_t tokens, targets;  // (M) device copies of the ids (unused on the host)
    tensor_t x0;  // (M,D)
    std::vector<sublayer_acts> sub;  // L
    std::vector<typename attn_t::Cache> attn_cache;  // n_layers
    std::vector<typename mlp_t::Cache> mlp_cache;    // n_layers
    tensor_t hout, y;  // (M,D)
    typename norm_t::Cache final_norm_cache;
    tensor_t logits, dlogits;  // (M,V)
    tensor<T> host_logits;     // (M,V) what forward / prefill return on a device backend
    tensor_t dy, dh, dv, dxn, dx0;  // (M,D) backward scratch
    tensor_t dh_dot_h;              // (M)   c = dh·h of a gather point, from its norm's backward
    typename policy_t::Cache rcache;
  };
  struct decode_scratch {
    ids_t tokens;  // (batch) device copy of the ids (unused on the host)
    tensor_t x0, h, xn, v, y, logits;
    tensor<T> host_logits;  // (batch,V) what decode_step returns on a device backend
    typename norm_t::Cache norm_cache;
    typename attn_t::Cache attn_cache;
    typename mlp_t::Cache mlp_cache;
    typename policy_t::Cache rcache;
  };

  // tokens: batch·seq ids in the backend's memory space (ids_in_space).
  void run_forward(const std::int32_t* tokens, index_t batch, index_t seq, bool keep, decode_state* kv) {
    auto& a = act_;
    const index_t M = batch * seq, D = cfg_.d_model;
    const int L = n_sublayers();
    a.batch = batch;
    a.seq = seq;
    // Training keeps every sublayer's activations for the backward. Inference (loss, forward,
    // prefill) reuses the buffers of sublayer 1 and layer 0 for all of them, so its memory is
    // the residual policy's streams plus one sublayer, not L sublayers.
    const std::size_t kept_sub = keep ? static_cast<std::size_t>(L) : 1;
    const std::size_t kept_layers = keep ? static_cast<std::size_t>(cfg_.n_layers) : 1;
    a.sub.resize(std::max(a.sub.size(), kept_sub));
    a.attn_cache.resize(std::max(a.attn_cache.size(), kept_layers));
    a.mlp_cache.resize(std::max(a.mlp_cache.size(), kept_layers));
    ensure(a.x0, M, D);
    for (std::size_t j = 0; j < kept_sub; ++j) {
      ensure(a.sub[j].h, M, D);
      ensure(a.sub[j].xn, M, D);
      ensure(a.sub[j].v, M, D);
    }
    ensure(a.hout, M, D);
    ensure(a.y, M, D);
    ensure(a.logits, M, cfg_.vocab);

    ops::embedding_forward(Backend{}, tokens, M, params.tok_embeddings.mat(), a.x0.mat());
    policy_.begin(a.rcache, a.x0.mat(), keep);
    if constexpr (on_host) {
      if (diag_) {
        diag_->begin_pass(L, M);
        diag_->on_source<T>(0, a.x0.mat());
      }
    }
    for (int l = 1; l <= L; ++l) {  // gather → sublayer → push
      auto& s = a.sub[keep ? l - 1 : 0];
      const index_t i = (l - 1) / 2;
      const std::size_t ci = keep ? static_cast<std::size_t>(i) : 0;  // attention / MLP cache slot
      auto& lp = params.layers[i];
      policy_.gather(params.residual, a.rcache, l, s.h.mat());
      if constexpr (on_host)
        if (diag_) diag_->on_gather<T>(l, s.h.mat(), policy_.depth_weights(a.rcache, l));
      // v_l goes where the policy keeps it, if it does (Block's b_n^1, Full's sources): no copy there
      tensor_t& v = source_buffer(l, s.v);
      if (l % 2 == 1) {
        norm_.forward(lp.attn_norm, s.norm_cache, s.h.mat(), s.xn.mat());
        attn_.forward(lp.attn, a.attn_cache[ci], s.xn.mat(), batch, seq, v.mat(), kv ? &kv->kv[i] : nullptr);
      } else {
        norm_.forward(lp.mlp_norm, s.norm_cache, s.h.mat(), s.xn.mat());
        mlp_.forward(lp.mlp, a.mlp_cache[ci], s.xn.mat(), v.mat());
      }
      policy_.push(a.rcache, l, v.mat());
      if constexpr (on_host)
        if (diag_) diag_->on_source<T>(l, v.mat());
    }
    policy_.gather(params.residual, a.rcache, L + 1, a.hout.mat());
    if constexpr (on_host)
      if (diag_) diag_->on_gather<T>(L + 1, a.hout.mat(), policy_.depth_weights(a.rcache, L + 1));
    norm_.forward(params.norm, a.final_norm_cache, a.hout.mat(), a.y.mat());
    ops::linear_forward(Backend{}, a.y.mat(), head_weight(), a.logits.mat());
  }

  // Where the forward writes sublayer l's output v_l: the policy's own slot when it offers one
  // (see residual/residual_policy.hpp), else the sublayer's buffer.
  tensor_t& source_buffer(int l, tensor_t& own) {
    if constexpr (requires { policy_.source_buffer(act_.rcache, l); })
      if (tensor_t* b = policy_.source_buffer(act_.rcache, l)) return *b;
    return own;
  }

  // Where run_backward writes ∂ℒ/∂h_l for gather point l ≤ L + 1: the policy's own buffer when
  // it offers one (see residual/residual_policy.hpp), else the shared act_.dh.
  tensor_t& gather_gradient_buffer(int l) {
    if constexpr (requires { policy_.gradient_buffer(act_.rcache, l); })
      if (tensor_t* b = policy_.gradient_buffer(act_.rcache, l)) return *b;
    return act_.dh;
  }

  // dh (zeroed by the caller) = the backward of the norm that reads gather point l's output h,
  // then the policy's gather_backward(l). A policy that needs c = dh·h (depth attention) takes
  // it from the norm when the norm gives x·dx (RMSNorm: dh is the norm's increment alone, so
  // x·dx = dh·h), instead of a pass of its own over dh and h (ops/rms_norm.hpp).
  template <class NormParams, class NormGrads>
  void norm_and_gather_backward(int l, const NormParams& np, const typename norm_t::Cache& nc, const_view_t h,
                                const_view_t dy, view_t dh, NormGrads& ng) {
    auto& a = act_;
    if constexpr (requires(T* c) {
                    norm_.backward(np, nc, h, dy, dh, ng, c);
                    policy_.gather_backward(params.residual, a.rcache, l, const_view_t(dh), grads.residual, c);
                  }) {
      if (a.dh_dot_h.size() != h.rows) a.dh_dot_h = tensor_t({h.rows});
      norm_.backward(np, nc, h, dy, dh, ng, a.dh_dot_h.data());
      policy_.gather_backward(params.residual, a.rcache, l, const_view_t(dh), grads.residual,
                              static_cast<const T*>(a.dh_dot_h.data()));
    } else {
      norm_.backward(np, nc, h, dy, dh, ng);
      policy_.gather_backward(params.residual, a.rcache, l, const_view_t(dh), grads.residual);
    }
  }

  void run_backward(const std::int32_t* tokens /*(M) in the backend's memory space*/) {
    auto& a = act_;
    const index_t M = a.batch * a.seq, D = cfg_.d_model;
    const int L = n_sublayers();
    for (tensor_t* t : {&a.dy, &a.dh, &a.dv, &a.dxn, &a.dx0}) ensure(*t, M, D);
    a.dy.set_zero();
    ops::linear_backward(Backend{}, a.y.mat(), head_weight(), a.dlogits.mat(), a.dy.mat(), head_grad());
    policy_.begin_backward(a.rcache);
    tensor_t& dh_out = gather_gradient_buffer(L + 1);
    dh_out.set_zero();
    norm_and_gather_backward(L + 1, params.norm, a.final_norm_cache, a.hout.mat(), a.dy.mat(), dh_out.mat(), grads.norm);
    for (int l = L; l >= 1; --l) {
      auto& s = a.sub[l - 1];
      const index_t i = (l - 1) / 2;
      auto& lp = params.layers[i];
      auto& lg = grads.layers[i];
      policy_.source_grad(a.rcache, l, a.dv.mat());
      if constexpr (on_host)
        if (diag_) diag_->on_source_grad<T>(l, a.dv.mat());
      a.dxn.set_zero();
      // dh_l goes where the policy keeps it, if it does (Block's batched backward): no copy there
      tensor_t& dh_buffer = gather_gradient_buffer(l);
      dh_buffer.set_zero();
      const view_t dh = dh_buffer.mat();
      if (l % 2 == 1) {
        attn_.backward(lp.attn, a.attn_cache[i], s.xn.mat(), a.dv.mat(), a.dxn.mat(), lg.attn);
        norm_and_gather_backward(l, lp.attn_norm, s.norm_cache, s.h.mat(), a.dxn.mat(), dh, lg.attn_norm);
      } else {
        mlp_.backward(lp.mlp, a.mlp_cache[i], s.xn.mat(), a.dv.mat(), a.dxn.mat(), lg.mlp);
        norm_and_gather_backward(l, lp.mlp_norm, s.norm_cache, s.h.mat(), a.dxn.mat(), dh, lg.mlp_norm);
      }
    }
    policy_.source_grad(a.rcache, 0, a.dx0.mat());
    if constexpr (on_host)
      if (diag_) diag_->on_source_grad<T>(0, a.dx0.mat());
    ops::embedding_backward(Backend{}, tokens, M, a.dx0.mat(), grads.tok_embeddings.mat());
  }

  model_config cfg_;
  policy_t policy_;
  norm_t norm_;
  attn_t attn_;
  mlp_t mlp_;
  activations act_;
  decode_scratch dec_;
  depth_diagnostics* diag_ = nullptr;  // not owned; see set_diagnostics
};

}  // namespace attnres
