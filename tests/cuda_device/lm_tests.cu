// GPU tests of the whole model: LM<…, backend::cuda> runs the same orchestration (model/lm.hpp,
// nn/, residual/) as LM<…, backend::cpu>, so from identical weights one training step must agree
// within float tolerance — the loss, every gradient, the weights after clipping and an AdamW step —
// and so must forward, prefill and decode_step logits. Weights saved on the device load on the
// host bit for bit. Without a device: "skipped: no CUDA device" and ctest's skip code.

#include "harness.hpp"

#include <attnres/cuda.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <type_traits>
#include <vector>

using namespace attnres_cuda_test;
namespace train = attnres::train;
using attnres::device_space;
using attnres::index_t;
using attnres::tensor;

namespace {

attnres::model_config small_config() {
  return {.vocab = 37, .d_model = 16, .n_heads = 2, .n_layers = 2, .d_ff = 24, .norm_eps = 1e-6,
          .rope_theta = 10000.0, .tie_embeddings = false};
}

std::vector<std::int32_t> random_ids(index_t n, index_t V, attnres::rng& gen) {
  std::vector<std::int32_t> ids(static_cast<std::size_t>(n));
  for (auto& t : ids) t = static_cast<std::int32_t>(gen.below(static_cast<std::uint64_t>(V)));
  return ids;
}

std::vector<float> download(const float* device, index_t n) {
  std::vector<float> h(static_cast<std::size_t>(n));
  attnres::cuda::copy_to_host(device, h.data(), n);
  return h;
}

// Gives the cpu model non-trivial weights (the structural ones too: gains and pseudo-queries, so
// α is not uniform) and copies every parameter to the gpu model.
template <class Cpu, class Gpu>
void same_weights(Cpu& cpu, Gpu& gpu, std::uint64_t seed) {
  cpu.init_weights(seed);
  attnres::rng gen(seed + 1);
  for (auto& p : cpu.parameters())
    if (!p.decay)
      for (index_t i = 0; i < p.size(); ++i) p.value[i] += static_cast<float>(0.1 * gen.normal());
  auto cp = cpu.parameters();
  auto gp = gpu.parameters();
  require(cp.size() == gp.size(), "the two models list different parameters");
  for (std::size_t i = 0; i < cp.size(); ++i) attnres::cuda::copy_to_device(cp[i].value, gp[i].value, cp[i].size());
}

template <class Cpu, class Gpu>
void require_same_params(Cpu& cpu, Gpu& gpu, bool grads, double rtol, double atol, const char* what) {
  auto cp = cpu.parameters();
  auto gp = gpu.parameters();
  for (std::size_t i = 0; i < cp.size(); ++i) {
    const auto g = download(grads ? gp[i].grad : gp[i].value, gp[i].size());
    const std::string name = std::string(what) + " " + cp[i].name;
    require_close(grads ? cp[i].grad : cp[i].value, g.data(), cp[i].size(), rtol, atol, name.c_str());
  }
}

template <class Residual, class Norm, class MLP>
void training_step_case() {
  using Cpu = attnres::LM<Residual, Norm, MLP, attnres::backend::cpu>;
  using Gpu = attnres::LM<Residual, Norm, MLP, attnres::backend::cuda>;
  const auto cfg = small_config();
  Cpu cpu(cfg);
  Gpu gpu(cfg);
  same_weights(cpu, gpu, 11);
  attnres::rng gen(3);
  const index_t B = 2, T = 7;
  const auto tokens = random_ids(B * T, cfg.vocab, gen), targets = random_ids(B * T, cfg.vocab, gen);

  // one training step: loss, gradients, clipping, AdamW
  cpu.zero_grad();
  gpu.zero_grad();
  const double l1 = cpu.forward_backward(tokens, targets, B, T);
  const double l2 = gpu.forward_backward(tokens, targets, B, T);
  require(std::abs(l1 - l2) <= 1e-5 * std::abs(l1), "loss " + std::to_string(l1) + " vs " + std::to_string(l2));
  require_same_params(cpu, gpu, true, 2e-3, 1e-5, "gradient");

  auto cp = cpu.parameters();
  auto gp = gpu.parameters();
  const double n1 = train::clip_grad_norm(cp, 0.5, attnres::backend::cpu{});
  const double n2 = train::clip_grad_norm(gp, 0.5, attnres::backend::cuda{});
  require(std::abs(n1 - n2) <= 1e-4 * n1, "gradient norm " + std::to_string(n1) + " vs " + std::to_string(n2));
  // ε large enough that the update lr·g/(|g| + ε) is smooth in g: a gradient element that is ~0
  // with opposite signs on the two backends must not move its weight by ±lr.
  const train::adamw_config opt{.lr = 1e-2, .eps = 1e-2, .weight_decay = 0.1};
  train::adamw<float, attnres::backend::cpu> o1(opt, cp);
  train::adamw<float, attnres::backend::cuda> o2(opt, gp);
  o1.step(cp);
  o2.step(gp);
  require_same_params(cpu, gpu, false, 1e-3, 1e-5, "weight after AdamW");

  // inference after the step: forward logits, and prefill + decode through the KV caches
  const auto f1 = to_tensor(cpu.forward(tokens, B, T));
  const auto f2 = gpu.forward(tokens, B, T);
  require_close(f1.data(), f2.data, f1.size(), 1e-3, 1e-5, "forward logits");
  auto s1 = cpu.start_decode(B, T + 2);
  auto s2 = gpu.start_decode(B, T + 2);
  const auto p1 = to_tensor(cpu.prefill(s1, tokens, T));
  const auto p2 = gpu.prefill(s2, tokens, T);
  require_close(p1.data(), p2.data, p1.size(), 1e-3, 1e-5, "prefill logits");
  const std::vector<std::int32_t> next = {3, 5};
  const auto d1 = to_tensor(cpu.decode_step(s1, next));
  const auto d2 = gpu.decode_step(s2, next);
  require_close(d1.data(), d2.data, d1.size(), 1e-3, 1e-5, "decode_step logits");

  // α comes back to the host
  if constexpr (!std::is_same_v<Residual, attnres::Sum>) {
    const auto a1 = cpu.depth_weights(cpu.n_sublayers() + 1), a2 = gpu.depth_weights(gpu.n_sublayers() + 1);
    require(a1.size() == a2.size() && a1.size() > 0, "depth_weights shape");
    require_close(a1.data(), a2.data(), a1.size(), 1e-4, 1e-6, "depth_weights");
  }

  // diagnostics read every source on the host: refused on the device, with the reason
  attnres::depth_diagnostics diag;
  try {
    gpu.set_diagnostics(&diag);
    throw failure("set_diagnostics on cuda did not throw");
  } catch (const attnres::usage_error& e) {
    require(std::string(e.what()).find("not supported on a device backend") != std::string::npos, e.what());
  }

  // saved on the device, loaded on the host: the same bits
  const auto path = std::filesystem::temp_directory_path() / "attnres_cuda_lm_roundtrip.safetensors";
  gpu.save(path);
  Cpu back(cfg);
  back.load(attnres::io::safetensors_file::load(path));
  std::filesystem::remove(path);
  auto bp = back.parameters();
  for (std::size_t i = 0; i < bp.size(); ++i) {
    const auto g = download(gp[i].value, gp[i].size());
    for (index_t j = 0; j < bp[i].size(); ++j)
      require(bp[i].value[j] == g[static_cast<std::size_t>(j)], "save on cuda, load on cpu: " + bp[i].name + " differs");
  }
  // and back onto the device
  back.save(path);
  Gpu again(cfg);
  again.load(attnres::io::safetensors_file::load(path));
  std::filesystem::remove(path);
  auto ap = again.parameters();
  for (std::size_t i = 0; i < ap.size(); ++i) {
    const auto g = download(ap[i].value, ap[i].size());
    for (index_t j = 0; j < bp[i].size(); ++j)
      require(bp[i].value[j] == g[static_cast<std::size_t>(j)], "save on cpu, load on cuda: " + bp[i].name + " differs");
  }
}

}  // namespace

int main() {
  if (attnres::cuda::device_count() == 0) {
    std::puts("skipped: no CUDA device");
    return skip_code;
  }
  using attnres::BlockAttnRes;
  using attnres::FullAttnRes;
  using attnres::GELU;
  using attnres::LayerNorm;
  using attnres::RMSNorm;
  using attnres::Sum;
  using attnres::SwiGLU;
  suite s;
  s.add("LM<BlockAttnRes<2>, RMSNorm, SwiGLU>: cuda step == cpu step", [] { training_step_case<BlockAttnRes<2>, RMSNorm, SwiGLU>(); });
  s.add("LM<BlockAttnRes<4>, RMSNorm, SwiGLU>: cuda step == cpu step", [] { training_step_case<BlockAttnRes<4>, RMSNorm, SwiGLU>(); });
  s.add("LM<Sum, RMSNorm, SwiGLU>: cuda step == cpu step", [] { training_step_case<Sum, RMSNorm, SwiGLU>(); });
  s.add("LM<FullAttnRes, RMSNorm, SwiGLU>: cuda step == cpu step", [] { training_step_case<FullAttnRes, RMSNorm, SwiGLU>(); });
  s.add("LM<BlockAttnRes<2>, LayerNorm, GELU>: cuda step == cpu step", [] { training_step_case<BlockAttnRes<2>, LayerNorm, GELU>(); });
  return s.run();
}
