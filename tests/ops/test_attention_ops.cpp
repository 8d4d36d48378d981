// ops/rope, ops/causal_attention, ops/attention_decode: reference backward against central
// differences, cpu against reference on awkward sizes, RoPE against PyTorch, causality,
// decode ≡ the last row of the prefill, and the errors for bad shapes.

#include "test_util.hpp"

#include <attnres/ops/attention_decode.hpp>
#include <attnres/ops/causal_attention.hpp>
#include <attnres/ops/rope.hpp>
#include <attnres/core/parallel.hpp>
#include <attnres/testing/gradient_check.hpp>

#include <array>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

using namespace attnres_test;
namespace ops = attnres::ops;
namespace backend = attnres::backend;
using attnres::matrix_view;
using attnres::tensor;

namespace {

// q, k, v of one attention call, (batch·T, H·Dh) each. With `fused`, they are column slices of
// one (batch·T, 3·H·Dh) tensor, as a fused QKV projection produces them: strided views.
template <class T>
struct attn_problem {
  index_t batch, seq, H, Dh;
  tensor<T> qkv;
  matrix_view<T> q, k, v;
  attn_problem(index_t batch_, index_t seq_, index_t H_, index_t Dh_, std::uint64_t seed, bool fused = false)
      : batch(batch_), seq(seq_), H(H_), Dh(Dh_) {
    attnres::rng gen(seed);
    const index_t M = batch * seq, HD = H * Dh;
    qkv = fused ? random_tensor<T>({M, 3 * HD}, gen) : random_tensor<T>({3, M, HD}, gen);
    if (fused) {
      q = {qkv.data(), M, HD, 3 * HD};
      k = {qkv.data() + HD, M, HD, 3 * HD};
      v = {qkv.data() + 2 * HD, M, HD, 3 * HD};
    } else {
      q = {qkv.data(), M, HD};
      k = {qkv.data() + M * HD, M, HD};
      v = {qkv.data() + 2 * M * HD, M, HD};
    }
  }
  index_t M() const { return batch * seq; }
  index_t HD() const { return H * Dh; }
  index_t probs_size() const { return batch * H * seq * seq; }
};

template <class T>
double dot(const tensor<T>& a, const tensor<T>& b) {
  double s = 0;
  for (index_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * static_cast<double>(b[i]);
  return s;
}

}  // namespace

// ---- (a) reference backward vs central differences, in double ------------------------------

TEST_CASE("rope: reference backward equals central differences", "[ops][attention][rope][grad]") {
  const index_t batch = 2, seq = 5, H = 2;
  const auto Dh = GENERATE(index_t(4), index_t(6));
  const auto pos0 = GENERATE(index_t(0), index_t(11));
  CAPTURE(Dh, pos0);
  attnres::rng gen(40 + Dh + pos0);
  tensor<double> x = random_tensor<double>({batch * seq, H * Dh}, gen);
  const tensor<double> w = random_tensor<double>({batch * seq, H * Dh}, gen);  // ℒ = Σ w ⊙ rope(x)
  auto loss = [&] {
    tensor<double> y = x;
    ops::rope_forward(backend::reference{}, y.mat(), seq, H, pos0, 10000.0);
    return dot(y, w);
  };
  tensor<double> dx = w;
  ops::rope_backward(backend::reference{}, dx.mat(), seq, H, pos0, 10000.0);
  const auto report = attnres::testing::compare_gradients(dx, attnres::testing::numeric_gradient(loss, x));
  INFO(report.describe("dx"));
  REQUIRE(report.ok);
  REQUIRE(report.norm > 0);
}

TEST_CASE("causal attention: reference backward equals central differences", "[ops][attention][grad]") {
  const index_t batch = 2, seq = 5, H = 2;
  const auto Dh = GENERATE(index_t(4), index_t(6));
  CAPTURE(Dh);
  attn_problem<double> pb(batch, seq, H, Dh, 70 + Dh);
  const index_t M = pb.M(), HD = pb.HD();
  attnres::rng gen(71 + Dh);
  const tensor<double> w = random_tensor<double>({M, HD}, gen);  // ℒ = Σ w ⊙ out
  tensor<double> q = to_tensor(pb.q), k = to_tensor(pb.k), v = to_tensor(pb.v);
  tensor<double> probs({pb.probs_size()});
  auto loss = [&] {
    tensor<double> out({M, HD}), p({pb.probs_size()});
    ops::causal_attention_forward(backend::reference{}, q.mat(), k.mat(), v.mat(), batch, seq, H, out.mat(), p.data());
    return dot(out, w);
  };
  tensor<double> out({M, HD}), dq({M, HD}), dk({M, HD}), dv({M, HD});
  ops::causal_attention_forward(backend::reference{}, q.mat(), k.mat(), v.mat(), batch, seq, H, out.mat(),
                                probs.data());
  dq.fill(7), dk.fill(7), dv.fill(7);  // overwritten, not accumulated
  ops::causal_attention_backward(backend::reference{}, q.mat(), k.mat(), v.mat(), probs.data(), w.mat(), batch, seq, H,
                                 dq.mat(), dk.mat(), dv.mat());
  const struct {
    const char* name;
    tensor<double>* x;
    const tensor<double>* analytic;
  } inputs[] = {{"dq", &q, &dq}, {"dk", &k, &dk}, {"dv", &v, &dv}};
  for (const auto& in : inputs) {
    const auto report =
        attnres::testing::compare_gradients(*in.analytic, attnres::testing::numeric_gradient(loss, *in.x));
    INFO(report.describe(in.name));
    CHECK(report.ok);
    CHECK(report.norm > 0);
  }
}

TEST_CASE("causal attention: probabilities are a causal softmax", "[ops][attention]") {
  const index_t batch = 2, seq = 6, H = 3, Dh = 4;
  const attn_problem<float> pb(batch, seq, H, Dh, 5);
  for (int be = 0; be < 2; ++be) {
    CAPTURE(be);
    tensor<float> out({pb.M(), pb.HD()}), probs({pb.probs_size()});
    probs.fill(std::numeric_limits<float>::quiet_NaN());  // every entry must be written
    if (be == 0)
      ops::causal_attention_forward(backend::reference{}, pb.q, pb.k, pb.v, batch, seq, H, out.mat(), probs.data());
    else
      ops::causal_attention_forward(backend::cpu{}, pb.q, pb.k, pb.v, batch, seq, H, out.mat(), probs.data());
    for (index_t bh = 0; bh < batch * H; ++bh)
      for (index_t i = 0; i < seq; ++i) {
        const float* row = probs.data() + (bh * seq + i) * seq;
        double sum = 0;
        for (index_t j = 0; j <= i; ++j) {
          CHECK(row[j] > 0.0f);
          sum += row[j];
        }
        CHECK(sum == Approx(1.0).epsilon(1e-6));
        for (index_t j = i + 1; j < seq; ++j) CHECK(row[j] == 0.0f);
      }
  }
}

// ---- (b) cpu equals reference, float, awkward sizes ----------------------------------------

TEST_CASE("rope and causal attention: cpu equals reference on awkward sizes", "[ops][attention][cpu]") {
  const auto seq = GENERATE(index_t(1), index_t(7), index_t(33), index_t(70));  // 70: several row blocks of 64
  const auto Dh = GENERATE(index_t(2), index_t(6), index_t(34));
  const auto H = GENERATE(index_t(1), index_t(3));
  const auto batch = GENERATE(index_t(1), index_t(2));
  const bool fused = (seq + Dh + H + batch) % 2 == 1;  // strided q, k, v on half of the cases
  CAPTURE(seq, Dh, H, batch, fused);
  const attn_problem<float> pb(batch, seq, H, Dh, 1000 + seq * 1000 + Dh * 10 + H + batch, fused);
  const index_t M = pb.M(), HD = pb.HD();
  attnres::rng gen(3 + seq + Dh);

  SECTION("rope forward and backward") {
    const index_t pos0 = seq == 7 ? 250 : 0;
    const tensor<float> x = to_tensor(pb.q);
    tensor<float> a = x, b = x;
    ops::rope_forward(backend::reference{}, a.mat(), seq, H, pos0, 10000.0);
    ops::rope_forward(backend::cpu{}, b.mat(), seq, H, pos0, 10000.0);
    REQUIRE_CLOSE(a.data(), b.data(), a.size(), 1e-6, 1e-6);
    ops::rope_backward(backend::reference{}, a.mat(), seq, H, pos0, 10000.0);
    ops::rope_backward(backend::cpu{}, b.mat(), seq, H, pos0, 10000.0);
    REQUIRE_CLOSE(a.data(), b.data(), a.size(), 1e-6, 1e-6);
    REQUIRE_CLOSE(a.data(), x.data(), a.size(), 1e-5, 1e-5);  // Rᵀ R = I
    // in place on a strided view (a column slice of the fused tensor): only that slice changes
    tensor<float> qkv = pb.qkv;
    const index_t offset = pb.q.data - pb.qkv.data();
    ops::rope_forward(backend::cpu{}, matrix_view<float>(qkv.data() + offset, M, HD, pb.q.stride), seq, H, pos0, 10000.0);
    tensor<float> expected = pb.qkv;
    ops::rope_forward(backend::reference{}, matrix_view<float>(expected.data() + offset, M, HD, pb.q.stride), seq, H,
                      pos0, 10000.0);
    REQUIRE_CLOSE(expected.data(), qkv.data(), qkv.size(), 1e-6, 1e-6);
    for (index_t i = 0; i < qkv.size(); ++i) {
      const index_t o = i - offset;
      const bool in_q = o >= 0 && o / pb.q.stride < M && o % pb.q.stride < HD;
      if (!in_q) REQUIRE(qkv[i] == pb.qkv[i]);
    }
  }
  SECTION("causal attention forward and backward") {
    tensor<float> out[2] = {tensor<float>({M, HD}), tensor<float>({M, HD})};
    tensor<float> probs[2] = {tensor<float>({pb.probs_size()}), tensor<float>({pb.probs_size()})};
    ops::causal_attention_forward(backend::reference{}, pb.q, pb.k, pb.v, batch, seq, H, out[0].mat(), probs[0].data());
    ops::causal_attention_forward(backend::cpu{}, pb.q, pb.k, pb.v, batch, seq, H, out[1].mat(), probs[1].data());
    REQUIRE_CLOSE(out[0].data(), out[1].data(), out[0].size(), 1e-5, 1e-5);
    REQUIRE_CLOSE(probs[0].data(), probs[1].data(), probs[0].size(), 1e-5, 1e-6);

    const tensor<float> dout = random_tensor<float>({M, HD}, gen);
    tensor<float> grads[2][3];
    for (int be = 0; be < 2; ++be) {
      for (auto& g : grads[be]) {
        g = tensor<float>({M, HD});
        g.fill(3.0f);  // overwritten, not accumulated
      }
      // both backends differentiate the same probabilities (the reference's)
      if (be == 0)
        ops::causal_attention_backward(backend::reference{}, pb.q, pb.k, pb.v, probs[0].data(), dout.mat(), batch, seq,
                                       H, grads[be][0].mat(), grads[be][1].mat(), grads[be][2].mat());
      else
        ops::causal_attention_backward(backend::cpu{}, pb.q, pb.k, pb.v, probs[0].data(), dout.mat(), batch, seq, H,
                                       grads[be][0].mat(), grads[be][1].mat(), grads[be][2].mat());
    }
    const char* names[] = {"dq", "dk", "dv"};
    for (int g = 0; g < 3; ++g) {
      INFO(names[g]);
      if (seq == 1 && g < 2) {
        // one position: the softmax is constant 1, so dq = dk = 0 exactly
        for (index_t i = 0; i < M * HD; ++i) REQUIRE(grads[1][g][i] == 0.0f);
        continue;
      }
      REQUIRE_CLOSE(grads[0][g].data(), grads[1][g].data(), M * HD, 1e-4, 1e-5);
    }
  }
}

// ---- (c) RoPE against PyTorch ---------------------------------------------------------------

TEST_CASE("rope: literal values from PyTorch (HF Llama rotate_half)", "[ops][attention][rope]") {
  // batch 2, T 2, H 2, Dh 6, pos0 7, θ = 10000; x[r][c] = ((12r + c)·37 mod 17 − 8)/4.
  // Expected values from torch 1.13 (float64), the HF Llama / GPT-NeoX formulation:
  //   import torch
  //   B,T,H,Dh,pos0,theta=2,2,2,6,7,10000.0
  //   x=torch.tensor([[((r*12+c)*37%17-8)/4.0 for c in range(H*Dh)] for r in range(B*T)],dtype=torch.float64)
  //   inv_freq=1.0/(theta**(torch.arange(0,Dh,2,dtype=torch.float64)/Dh))
  //   t=torch.arange(pos0,pos0+T,dtype=torch.float64)
  //   emb=torch.cat((torch.outer(t,inv_freq),)*2,dim=-1)
  //   cos,sin=emb.cos()[None,None],emb.sin()[None,None]
  //   def rotate_half(x): return torch.cat((-x[...,Dh//2:],x[...,:Dh//2]),dim=-1)
  //   xh=x.view(B,T,H,Dh).transpose(1,2)
  //   out=(xh*cos+rotate_half(xh)*sin).transpose(1,2).reshape(B*T,H*Dh)
  const index_t B = 2, T = 2, H = 2, Dh = 6, pos0 = 7;
  const double expected[4][12] = {
      {-1.6720511583663065, -1.5038234899062461, -0.52633396616204675, -1.1254976338517519, 0.54864825818205121,
       1.7422607600655331, -1.6478222444601776, -1.3467098846978387, -0.28013251314733795, -0.7727754205862285,
       0.86537418869361615, 1.9960024486652705},
      {-0.52376863425461595, -1.2431635833831307, 0.034469248399192569, -1.5931623952915328, 1.1256306254495807,
       -1.9997029456683797, -0.80748320436261489, -1.1009150305187567, 0.28012346055784099, -1.3821978420878409,
       1.4493053838228454, -1.7454314214099331},
      {-1.5751355027417908, -0.87536906907261613, 0.5225638483695324, 0.28539121921034172, 1.8155519802283111,
       -1.4922891892583101, -1.5509065888356619, 0.63844930121262988, 0.76876530138424115, 0.63811343247586505,
       -1.8953581428798898, -1.2385475006585724},
      {-1.6586269146866115, 0.86795337489993718, 1.0170860970337861, -0.74930418247676456, -1.5400184865772908,
       -0.98261684863459353, -1.9423414847946101, 1.0102019277643113, 1.2627403091924345, -0.53833962927307255,
       -1.2163437282040259, -0.72834532437614696}};
  auto input = [&]<class S>(S) {
    tensor<S> x({B * T, H * Dh});
    for (index_t r = 0; r < B * T; ++r)
      for (index_t c = 0; c < H * Dh; ++c) x[r * H * Dh + c] = static_cast<S>(((r * 12 + c) * 37 % 17 - 8) / 4.0);
    return x;
  };
  auto check = [&]<class S>(auto be, S, double tol) {
    tensor<S> x = input(S{});
    ops::rope_forward(be, x.mat(), T, H, pos0, 10000.0);
    REQUIRE_CLOSE(x.data(), &expected[0][0], x.size(), tol, tol);
    ops::rope_backward(be, x.mat(), T, H, pos0, 10000.0);  // and back again
    const tensor<S> x0 = input(S{});
    REQUIRE_CLOSE(x.data(), x0.data(), x.size(), tol, tol);
  };
  SECTION("reference, double") { check(backend::reference{}, 0.0, 1e-14); }
  SECTION("cpu, double") { check(backend::cpu{}, 0.0, 1e-14); }
  SECTION("reference, float") { check(backend::reference{}, 0.0f, 1e-6); }
  SECTION("cpu, float") { check(backend::cpu{}, 0.0f, 1e-6); }
}

// ---- (d) causality ---------------------------------------------------------------------------

TEST_CASE("causal attention: outputs before position t do not see k, v at t", "[ops][attention][invariant]") {
  const index_t batch = 2, seq = 9, H = 2, Dh = 6;
  const attn_problem<float> pb(batch, seq, H, Dh, 123);
  const index_t M = pb.M(), HD = pb.HD();
  auto run = [&](auto be, attnres::const_matrix_view<float> k, attnres::const_matrix_view<float> v, tensor<float>& out,
                 tensor<float>& probs) {
    ops::causal_attention_forward(be, pb.q, k, v, batch, seq, H, out.mat(), probs.data());
  };
  auto check = [&](auto be) {
    tensor<float> out0({M, HD}), probs0({pb.probs_size()});
    run(be, pb.k, pb.v, out0, probs0);
    for (index_t t : {index_t(0), index_t(4), index_t(8)}) {
      CAPTURE(t);
      tensor<float> k = to_tensor(pb.k), v = to_tensor(pb.v);
      for (index_t b = 0; b < batch; ++b)
        for (index_t c = 0; c < HD; ++c) {
          k[(b * seq + t) * HD + c] += 3.0f;
          v[(b * seq + t) * HD + c] -= 5.0f;
        }
      tensor<float> out({M, HD}), probs({pb.probs_size()});
      run(be, k.mat(), v.mat(), out, probs);
      for (index_t b = 0; b < batch; ++b) {
        for (index_t i = 0; i < seq; ++i) {
          const float* o0 = out0.data() + (b * seq + i) * HD;
          const float* o1 = out.data() + (b * seq + i) * HD;
          bool same = true;
          for (index_t c = 0; c < HD; ++c) same = same && o0[c] == o1[c];
          CAPTURE(b, i);
          CHECK(same == (i < t));  // exactly unchanged before t, changed from t on
        }
        for (index_t h = 0; h < H; ++h)
          for (index_t i = 0; i < t; ++i)
            for (index_t j = 0; j < seq; ++j) {
              const index_t e = ((b * H + h) * seq + i) * seq + j;
              REQUIRE(probs0[e] == probs[e]);
            }
      }
    }
  };
  SECTION("reference") { check(backend::reference{}); }
  SECTION("cpu") { check(backend::cpu{}); }
}

// ---- (e) decode ≡ the last row of the prefill ------------------------------------------------

TEST_CASE("attention_decode equals the last row of the causal forward", "[ops][attention][decode][invariant]") {
  const auto Dh = GENERATE(index_t(6), index_t(34));
  const index_t batch = 2, seq = 19, H = 3, T_max = seq + 2;  // n = 1 … 19: past 4 keys and 8 values per pass
  CAPTURE(Dh);
  const attn_problem<float> pb(batch, seq, H, Dh, 900 + Dh, /*fused=*/true);
  const index_t HD = pb.HD();
  // Caches (batch, T_max, H·Dh); positions past the sequence hold NaN, so reading one shows.
  tensor<float> k_cache({batch, T_max, HD}), v_cache({batch, T_max, HD});
  k_cache.fill(std::numeric_limits<float>::quiet_NaN());
  v_cache.fill(std::numeric_limits<float>::quiet_NaN());
  for (index_t b = 0; b < batch; ++b)
    for (index_t t = 0; t < seq; ++t)
      for (index_t c = 0; c < HD; ++c) {
        k_cache[(b * T_max + t) * HD + c] = pb.k(b * seq + t, c);
        v_cache[(b * T_max + t) * HD + c] = pb.v(b * seq + t, c);
      }
  auto check = [&](auto be) {
    for (index_t n = 1; n <= seq; ++n) {
      CAPTURE(n);
      // the prefill over the first n positions of each sequence
      tensor<float> q({batch * n, HD}), k({batch * n, HD}), v({batch * n, HD});
      for (index_t b = 0; b < batch; ++b)
        for (index_t t = 0; t < n; ++t)
          for (index_t c = 0; c < HD; ++c) {
            q[(b * n + t) * HD + c] = pb.q(b * seq + t, c);
            k[(b * n + t) * HD + c] = pb.k(b * seq + t, c);
            v[(b * n + t) * HD + c] = pb.v(b * seq + t, c);
          }
      tensor<float> out({batch * n, HD}), probs({batch * H * n * n});
      ops::causal_attention_forward(be, q.mat(), k.mat(), v.mat(), batch, n, H, out.mat(), probs.data());
      // one decode step with the newest query of each sequence
      tensor<float> q_new({batch, HD}), last({batch, HD}), got({batch, HD});
      for (index_t b = 0; b < batch; ++b)
        for (index_t c = 0; c < HD; ++c) {
          q_new[b * HD + c] = q[(b * n + n - 1) * HD + c];
          last[b * HD + c] = out[(b * n + n - 1) * HD + c];
        }
      ops::attention_decode(be, q_new.mat(), k_cache.data(), v_cache.data(), n, T_max, H, got.mat());
      REQUIRE_CLOSE(last.data(), got.data(), last.size(), 1e-5, 1e-6);
      tensor<float> ref({batch, HD});
      ops::attention_decode(backend::reference{}, q_new.mat(), k_cache.data(), v_cache.data(), n, T_max, H, ref.mat());
      REQUIRE_CLOSE(ref.data(), got.data(), ref.size(), 1e-5, 1e-6);
    }
  };
  SECTION("reference") { check(backend::reference{}); }
  SECTION("cpu") { check(backend::cpu{}); }
}

// ---- (e2) the layer's decode step in one op ≡ its ops in turn ------------------------------------

TEST_CASE("attention_decode_step equals the reference's ops in turn", "[ops][attention][decode]") {
  // B ≤ 4 with H a multiple of the thread count: the cpu runs each head on one thread; B = 5 or
  // other H: the ops in turn. Dh = 2: one channel pair; 10: a tail past the SIMD width.
  const auto B = GENERATE(index_t(1), index_t(3), index_t(5));
  const auto H = GENERATE(index_t(1), index_t(2), index_t(4), index_t(2 * attnres::max_threads()));
  const auto Dh = GENERATE(index_t(2), index_t(10));
  const auto pos = GENERATE(index_t(0), index_t(3), index_t(6));
  const bool on_team = GENERATE(false, true);  // as LM::decode_step runs it, or with OpenMP loops
  const index_t D = H * Dh, T_max = 7;
  CAPTURE(B, H, Dh, pos, on_team, attnres::max_threads());
  attnres::rng gen(static_cast<std::uint64_t>(1000 * B + 100 * H + 10 * Dh + pos));
  const auto x = random_tensor<float>({B, D}, gen);
  // weights scaled by 1/√D, as an initialisation would: q and k of unit size, a softmax that
  // is not one-hot (a one-hot one would amplify each side's rounding past any tolerance)
  const double sd = 1 / std::sqrt(static_cast<double>(D));
  const auto wq = random_tensor<float>({D, D}, gen, 0.0, sd), wk = random_tensor<float>({D, D}, gen, 0.0, sd),
             wv = random_tensor<float>({D, D}, gen, 0.0, sd);
  // cached positions before pos hold keys and values, the others NaN: reading one shows
  auto cache = random_tensor<float>({B, T_max, D}, gen);
  for (index_t b = 0; b < B; ++b)
    for (index_t t = pos; t < T_max; ++t)
      for (index_t c = 0; c < D; ++c) cache[(b * T_max + t) * D + c] = std::numeric_limits<float>::quiet_NaN();
  struct side {
    tensor<float> q, k, v, out, kc, vc;
  };
  auto fresh = [&] { return side{tensor<float>({B, D}), tensor<float>({B, D}), tensor<float>({B, D}), tensor<float>({B, D}), cache, cache}; };
  side ref = fresh(), cpu = fresh();
  auto run = [&](auto be, side& s) {
    ops::attention_decode_step(be, x.mat(), wq.mat(), wk.mat(), wv.mat(), s.q.mat(), s.k.mat(), s.v.mat(), s.kc.data(),
                               s.vc.data(), pos, T_max, H, 10000.0, s.out.mat());
  };
  run(backend::reference{}, ref);
  if (on_team)
    attnres::with_spinning_team([&] { run(backend::cpu{}, cpu); });
  else
    run(backend::cpu{}, cpu);
  REQUIRE_CLOSE(ref.q.data(), cpu.q.data(), ref.q.size(), 1e-5, 1e-6);
  REQUIRE_CLOSE(ref.k.data(), cpu.k.data(), ref.k.size(), 1e-5, 1e-6);
  REQUIRE_CLOSE(ref.v.data(), cpu.v.data(), ref.v.size(), 1e-5, 1e-6);
  REQUIRE_CLOSE(ref.out.data(), cpu.out.data(), ref.out.size(), 1e-5, 1e-6);
  // position pos now holds the rotated k and the v of the step; every other position is as it was
  for (index_t b = 0; b < B; ++b)
    for (index_t t = 0; t < T_max; ++t)
      for (index_t c = 0; c < D; ++c) {
        const index_t e = (b * T_max + t) * D + c;
        if (t == pos) {
          REQUIRE(cpu.kc[e] == cpu.k[b * D + c]);
          REQUIRE(cpu.vc[e] == cpu.v[b * D + c]);
          REQUIRE(ref.kc[e] == ref.k[b * D + c]);
        } else if (t < pos) {
          REQUIRE(cpu.kc[e] == cache[e]);
          REQUIRE(cpu.vc[e] == cache[e]);
        } else {
          REQUIRE(std::isnan(cpu.kc[e]));
          REQUIRE(std::isnan(cpu.vc[e]));
        }
      }
  // the step's output is attention_decode over the cache it wrote
  tensor<float> again({B, D});
  ops::attention_decode(backend::reference{}, cpu.q.mat(), cpu.kc.data(), cpu.vc.data(), pos + 1, T_max, H, again.mat());
  REQUIRE_CLOSE(again.data(), cpu.out.data(), again.size(), 1e-5, 1e-6);
}

TEST_CASE("attention_decode_step with bf16 weights equals the float step with the weights rounded",
          "[ops][attention][decode][bf16]") {
  // The bf16 step multiplies with the bf16 numbers widened to float: the float step given
  // those same numbers as float weights. Reference against reference: the same loops (equal up
  // to where the compiler fuses a multiply-add); cpu (head by head, or the ops in turn) against
  // them: float summation order only.
  using attnres::bf16;
  const auto B = GENERATE(index_t(1), index_t(5));
  const auto H = GENERATE(index_t(2), index_t(3));
  const index_t Dh = 10, D = H * Dh, T_max = 6, pos = 4;
  CAPTURE(B, H);
  attnres::rng gen(static_cast<std::uint64_t>(70 + 10 * B + H));
  const auto x = random_tensor<float>({B, D}, gen);
  const double sd = 1 / std::sqrt(static_cast<double>(D));
  std::array<tensor<float>, 3> w_float;
  std::array<tensor<bf16>, 3> w_bf16;
  for (std::size_t j = 0; j < 3; ++j) {
    const auto w = random_tensor<float>({D, D}, gen, 0.0, sd);
    w_bf16[j] = tensor<bf16>({D, D});
    w_float[j] = tensor<float>({D, D});
    attnres::to_bf16(w.data(), w_bf16[j].data(), w.size());
    for (index_t i = 0; i < w.size(); ++i) w_float[j][i] = static_cast<float>(w_bf16[j][i]);
  }
  const auto cache = random_tensor<float>({B, T_max, D}, gen);
  struct side {
    tensor<float> q, k, v, out, kc, vc;
  };
  auto fresh = [&] {
    return side{tensor<float>({B, D}), tensor<float>({B, D}), tensor<float>({B, D}), tensor<float>({B, D}), cache, cache};
  };
  auto run = [&](auto be, const auto& w, side& s) {
    using W = typename std::remove_cvref_t<decltype(w[0])>::value_type;
    ops::attention_decode_step<float, W>(be, x.mat(), w[0].mat(), w[1].mat(), w[2].mat(), s.q.mat(), s.k.mat(),
                                         s.v.mat(), s.kc.data(), s.vc.data(), pos, T_max, H, 10000.0, s.out.mat());
  };
  side ref_float = fresh(), ref_bf16 = fresh(), cpu_bf16 = fresh();
  run(backend::reference{}, w_float, ref_float);
  run(backend::reference{}, w_bf16, ref_bf16);
  attnres::with_spinning_team([&] { run(backend::cpu{}, w_bf16, cpu_bf16); });
  REQUIRE_CLOSE(ref_bf16.out.data(), ref_float.out.data(), ref_bf16.out.size(), 1e-5, 1e-6);
  REQUIRE_CLOSE(ref_bf16.kc.data(), ref_float.kc.data(), ref_bf16.kc.size(), 1e-5, 1e-6);
  REQUIRE_CLOSE(ref_bf16.q.data(), cpu_bf16.q.data(), ref_bf16.q.size(), 1e-5, 1e-6);
  REQUIRE_CLOSE(ref_bf16.kc.data(), cpu_bf16.kc.data(), ref_bf16.kc.size(), 1e-5, 1e-6);
  REQUIRE_CLOSE(ref_bf16.vc.data(), cpu_bf16.vc.data(), ref_bf16.vc.size(), 1e-5, 1e-6);
  REQUIRE_CLOSE(ref_bf16.out.data(), cpu_bf16.out.data(), ref_bf16.out.size(), 1e-5, 1e-6);
}

TEST_CASE("attention_decode_step refuses bad shapes, naming the problem", "[ops][attention][decode][errors]") {
  auto check = [](auto be) {
    tensor<float> x({2, 8}), w({8, 8}), q({2, 8}), k({2, 8}), v({2, 8}), out({2, 8}), cache({2, 4, 8});
    auto step = [&](const tensor<float>& wq, tensor<float>& kk, index_t pos, index_t H, tensor<float>& o) {
      ops::attention_decode_step(be, x.mat(), wq.mat(), w.mat(), w.mat(), q.mat(), kk.mat(), v.mat(), cache.data(),
                                 cache.data(), pos, 4, H, 10000.0, o.mat());
    };
    tensor<float> w_bad({8, 6}), k_bad({2, 6}), out_bad({3, 8});
    REQUIRE_THROWS_WITH(step(w_bad, k, 0, 2, out), contains("linear_forward: x is (2,8) but W is (8,6)"));
    REQUIRE_THROWS_WITH(step(w, k_bad, 0, 2, out), contains("linear_forward: y is (2,6) but x Wᵀ is (2,8)"));
    REQUIRE_THROWS_WITH(step(w, k, 4, 2, out), contains("attention_decode_step: position 4 is not in the cache's [0, T_max = 4)"));
    REQUIRE_THROWS_WITH(step(w, k, -1, 2, out), contains("position -1"));
    REQUIRE_THROWS_WITH(step(w, k, 0, 8, out), contains("head dim Dh = 1 is odd"));
    REQUIRE_THROWS_WITH(step(w, k, 0, 3, out), contains("q has 8 columns, which is not H·Dh for H = 3 heads"));
    REQUIRE_THROWS_WITH(step(w, k, 0, 2, out_bad), contains("out has shape (3, 8) but q is (2, 8)"));
    REQUIRE_NOTHROW(step(w, k, 3, 2, out));
  };
  SECTION("reference") { check(backend::reference{}); }
  SECTION("cpu") { check(backend::cpu{}); }
}

// ---- (f) errors --------------------------------------------------------------------------------

TEST_CASE("attention ops refuse bad shapes, naming the problem", "[ops][attention][errors]") {
  auto check = [](auto be) {
    tensor<float> x({4, 6});  // H = 2 → Dh = 3
    REQUIRE_THROWS_AS(ops::rope_forward(be, x.mat(), 2, 2, 0, 10000.0), attnres::shape_error);
    REQUIRE_THROWS_WITH(ops::rope_forward(be, x.mat(), 2, 2, 0, 10000.0), contains("rope_forward: head dim Dh = 3 is odd"));
    REQUIRE_THROWS_WITH(ops::rope_backward(be, x.mat(), 2, 2, 0, 10000.0), contains("rope_backward: head dim Dh = 3 is odd"));
    REQUIRE_THROWS_WITH(ops::rope_forward(be, x.mat(), 2, 4, 0, 10000.0),
                        contains("x has 6 columns, which is not H·Dh for H = 4 heads"));
    REQUIRE_THROWS_WITH(ops::rope_forward(be, x.mat(), 3, 3, 0, 10000.0),
                        contains("x has 4 rows, which is not a multiple of T = 3"));
    REQUIRE_THROWS_AS(ops::rope_forward(be, x.mat(), 2, 3, 0, -1.0), attnres::config_error);
    tensor<float> xe({4, 8});  // H = 2 → Dh = 4
    REQUIRE_THROWS_WITH(ops::rope_forward(be, xe.mat(), 2, 2, -1, 10000.0),
                        contains("rope_forward: the first position -1 is negative"));
    REQUIRE_THROWS_WITH(ops::rope_backward(be, xe.mat(), 2, 2, -3, 10000.0),
                        contains("rope_backward: the first position -3 is negative"));

    tensor<float> q({8, 8}), k({8, 6}), v({8, 8}), out({8, 8}), probs({2 * 2 * 4 * 4});
    tensor<float> dq({8, 8}), dk({8, 8}), dv({8, 8});
    REQUIRE_THROWS_AS(ops::causal_attention_forward(be, q.mat(), k.mat(), v.mat(), 2, 4, 2, out.mat(), probs.data()),
                      attnres::shape_error);
    REQUIRE_THROWS_WITH(ops::causal_attention_forward(be, q.mat(), k.mat(), v.mat(), 2, 4, 2, out.mat(), probs.data()),
                        contains("causal_attention_forward: k has shape (8, 6) but q is (8, 8)"));
    REQUIRE_THROWS_WITH(ops::causal_attention_forward(be, q.mat(), q.mat(), v.mat(), 2, 5, 2, out.mat(), probs.data()),
                        contains("q has 8 rows but batch·T = 2·5 = 10"));
    REQUIRE_THROWS_WITH(ops::causal_attention_forward(be, q.mat(), q.mat(), v.mat(), 2, 4, 3, out.mat(), probs.data()),
                        contains("q has 8 columns, which is not H·Dh for H = 3 heads"));
    REQUIRE_THROWS_WITH(ops::causal_attention_backward(be, q.mat(), q.mat(), v.mat(), probs.data(), out.mat(), 2, 4, 2,
                                                       dq.mat(), dk.mat(), tensor<float>({8, 4}).mat()),
                        contains("causal_attention_backward: dv has shape (8, 4) but q is (8, 8)"));
    REQUIRE_THROWS_WITH(ops::causal_attention_forward(be, q.mat(), q.mat(), v.mat(), 2, 4, 2, out.mat(), static_cast<float*>(nullptr)),
                        contains("probs is null"));

    tensor<float> qd({2, 8}), od({2, 8}), cache({2, 4, 8});
    REQUIRE_THROWS_WITH(ops::attention_decode(be, qd.mat(), cache.data(), cache.data(), 5, 4, 2, od.mat()),
                        contains("attention_decode: n = 5 valid positions is not in [1, T_max = 4]"));
    REQUIRE_THROWS_WITH(ops::attention_decode(be, qd.mat(), cache.data(), cache.data(), 0, 4, 2, od.mat()),
                        contains("n = 0 valid positions"));
    REQUIRE_THROWS_WITH(ops::attention_decode(be, qd.mat(), cache.data(), cache.data(), 2, 4, 2, tensor<float>({3, 8}).mat()),
                        contains("attention_decode: out has shape (3, 8) but q is (2, 8)"));
    REQUIRE_THROWS_WITH(ops::attention_decode(be, qd.mat(), cache.data(), cache.data(), 2, 4, 3, od.mat()),
                        contains("q has 8 columns, which is not H·Dh for H = 3 heads"));
    REQUIRE_NOTHROW(ops::attention_decode(be, qd.mat(), cache.data(), cache.data(), 4, 4, 2, od.mat()));
  };
  SECTION("reference") { check(backend::reference{}); }
  SECTION("cpu") { check(backend::cpu{}); }
}
