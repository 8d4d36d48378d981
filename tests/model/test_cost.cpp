// model/cost.hpp: the FLOP count and the stream model agree with the policies and with a hand count.
#include "catch.hpp"

#include <attnres/model/cost.hpp>
#include <attnres/model/lm.hpp>

namespace {

using namespace attnres;

template <class Residual>
void check_sources(const model_config& cfg, const architecture& a) {
  const typename Residual::template with<float, backend::cpu> policy(
      residual_config{cfg.n_sublayers(), cfg.d_model, cfg.norm_eps, true});
  for (int l = 1; l <= cfg.n_sublayers() + 1; ++l) {
    INFO("gather point " << l);
    CHECK(depth_sources(a, cfg.n_sublayers(), l) == policy.n_sources(l));
  }
}

}  // namespace

TEST_CASE("cost: depth_sources matches every policy's n_sources", "[model][cost]") {
  model_config cfg{.vocab = 256, .d_model = 8, .n_heads = 2, .n_layers = 4, .d_ff = 16};
  check_sources<BlockAttnRes<1>>(cfg, {"block", 1, "swiglu", "rmsnorm"});
  check_sources<BlockAttnRes<2>>(cfg, {"block", 2, "swiglu", "rmsnorm"});
  check_sources<BlockAttnRes<4>>(cfg, {"block", 4, "swiglu", "rmsnorm"});
  check_sources<BlockAttnRes<8>>(cfg, {"block", 8, "swiglu", "rmsnorm"});
  check_sources<FullAttnRes>(cfg, {"full", 8, "swiglu", "rmsnorm"});
  CHECK(depth_sources({"sum", 0, "swiglu", "rmsnorm"}, 8, 3) == 0);  // Sum adds, it does not mix
}

TEST_CASE("cost: FLOPs per token by hand and the stream counts of Table 1", "[model][cost]") {
  // D = 4, F = 6, V = 10, 1 layer (L = 2), T = 3, GELU:
  //   layer: 8·16 + 2·4·(3+1) + 4·4·6 = 128 + 32 + 96 = 256;  head: 2·4·10 = 80
  //   Full mixes 1, 2, 3 sources at points 1..3: 4·(1+2+3)·4 = 96
  const model_config cfg{.vocab = 10, .d_model = 4, .n_heads = 2, .n_layers = 1, .d_ff = 6};
  CHECK(forward_flops_per_token(cfg, {"sum", 0, "gelu", "rmsnorm"}, 3) == 336.0);
  CHECK(forward_flops_per_token(cfg, {"full", 2, "gelu", "rmsnorm"}, 3) == 432.0);
  CHECK(training_flops_per_token(cfg, {"full", 2, "gelu", "rmsnorm"}, 3) == 3 * 432.0);
  // SwiGLU has a third projection: + 2·D·F = 48
  CHECK(forward_flops_per_token(cfg, {"sum", 0, "swiglu", "rmsnorm"}, 3) == 384.0);
  CHECK(residual_streams({"sum", 0, "swiglu", "rmsnorm"}, 16) == 1);
  CHECK(residual_streams({"block", 4, "swiglu", "rmsnorm"}, 16) == 5);
  CHECK(residual_streams({"full", 16, "swiglu", "rmsnorm"}, 16) == 17);
}
