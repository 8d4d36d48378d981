// The training loop: same seed, same result; a resumed run continues bit-identically; a
// checkpoint pair from different steps is refused; loss goes down on real structure.

#include "test_util.hpp"
#include "temp_dir.hpp"

#include <attnres/model/lm.hpp>
#include <attnres/train/trainer.hpp>

using namespace attnres_test;
namespace train = attnres::train;

namespace {

using Model = attnres::LM<attnres::BlockAttnRes<2>>;

const attnres::model_config cfg{.vocab = 256, .d_model = 16, .n_heads = 2, .n_layers = 2, .d_ff = 24};

train::train_options options(std::int64_t steps) {
  train::train_options o;
  o.batch = 3;
  o.seq = 16;
  o.steps = steps;
  o.lr = 3e-3;
  o.warmup = 2;
  o.accum = 2;
  o.eval_windows = 2;
  return o;
}

std::pair<train::byte_corpus, train::byte_corpus> data() {
  return train::byte_corpus::synthetic(20000, 5).split(0.1, 17);
}

std::vector<float> weights(Model& m) {
  std::vector<float> w;
  for (const auto& p : m.parameters()) w.insert(w.end(), p.value, p.value + p.size());
  return w;
}

}  // namespace

TEST_CASE("same seed, same result", "[train][trainer]") {
  auto [tr, va] = data();
  Model a(cfg), b(cfg);
  a.init_weights(3);
  b.init_weights(3);
  train::trainer<Model> ta(a, options(6), tr, va), tb(b, options(6), tr, va);
  const auto sa = ta.run(), sb = tb.run();
  CHECK(sa.final_loss == sb.final_loss);
  CHECK(weights(a) == weights(b));
}

TEST_CASE("2K steps straight equal K steps, save, resume, K steps — bit for bit", "[train][trainer][checkpoint]") {
  const std::int64_t K = 4;
  auto [tr, va] = data();
  Model straight(cfg);
  straight.init_weights(7);
  train::trainer<Model> t1(straight, options(2 * K), tr, va);
  t1.run();

  temp_dir dir;
  {
    Model first(cfg);
    first.init_weights(7);
    auto opt = options(2 * K);
    train::trainer<Model> t2(first, opt, tr, va);
    // stop after K steps by running a trainer whose budget is K, sharing the schedule of 2K
    opt.steps = 2 * K;
    struct stop_at_k {};
    try {
      t2.run([&](const train::step_report& r) {
        if (r.step == K) {
          t2.save_checkpoint(dir.path() / "ckpt");
          throw stop_at_k{};
        }
      });
    } catch (stop_at_k) {
    }
  }
  Model resumed(cfg);
  resumed.init_weights(999);  // different init: everything must come from the checkpoint
  train::trainer<Model> t3(resumed, options(2 * K), tr, va);
  t3.resume(dir.path() / "ckpt");
  CHECK(t3.step() == K);
  t3.run();
  REQUIRE(weights(resumed) == weights(straight));
}

TEST_CASE("a checkpoint whose two files disagree is refused", "[train][trainer][checkpoint]") {
  auto [tr, va] = data();
  temp_dir dir;
  Model m(cfg);
  m.init_weights(1);
  train::trainer<Model> t(m, options(3), tr, va);
  t.run({}, nullptr, dir.path() / "a");
  // overwrite the model with one saved at another step
  m.save(dir.path() / "a" / "model.safetensors", {{"train.step", "2"}});
  Model m2(cfg);
  train::trainer<Model> t2(m2, options(3), tr, va);
  REQUIRE_THROWS_WITH(t2.resume(dir.path() / "a"), contains("from different steps"));
  auto other = options(3);
  other.batch = 5;
  Model m3(cfg);
  train::trainer<Model> t3(m3, other, tr, va);
  t.save_checkpoint(dir.path() / "b");
  REQUIRE_THROWS_WITH(t3.resume(dir.path() / "b"), contains("train.batch = 3, but this run uses 5"));
}

TEST_CASE("training reduces the loss on structured text", "[train][trainer]") {
  auto [tr, va] = data();
  Model m(cfg);
  m.init_weights(2);
  auto opt = options(40);
  opt.accum = 1;
  train::trainer<Model> t(m, opt, tr, va);
  const double before = t.evaluate();
  const auto s = t.run();
  CHECK(before > 5.0);  // ≈ ln 256 = 5.55 at init
  CHECK(s.val_loss < before - 1.0);
}
