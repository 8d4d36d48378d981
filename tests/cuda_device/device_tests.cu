// GPU tests: every CUDA op against the reference / cpu path on the same random inputs, on awkward
// sizes. They need a device; without one they print "skipped: no CUDA device" and return ctest's
// skip code — a skip is not a pass: the CPU tests of the row math (tests/cuda/) carry the proof.

#include "harness.hpp"

#include <attnres/cuda.hpp>

#include <cstdint>
#include <span>
#include <vector>

using namespace attnres_cuda_test;
namespace ops = attnres::ops;
namespace cuda = attnres::cuda;
using attnres::device_space;
using attnres::index_t;
using attnres::tensor;
using dtensor = cuda::device_tensor<float>;
constexpr attnres::backend::cuda gpu{};
constexpr attnres::backend::reference ref{};

namespace {

tensor<float> random(std::vector<index_t> shape, attnres::rng& gen, double mean = 0.0, double sd = 1.0) {
  tensor<float> t(std::move(shape));
  attnres::fill_normal(t, gen, mean, sd);
  return t;
}

std::vector<float> host(const dtensor& d) {
  const tensor<float> h = cuda::download(d);
  return {h.begin(), h.end()};
}

void rms_norm_case(index_t M, index_t D) {
  attnres::rng gen(1 + M + D);
  const auto x = random({M, D}, gen, 0.2, 2.0), g = random({D}, gen, 1.0, 0.3), dy = random({M, D}, gen);
  tensor<float> y({M, D}), r({M}), dx({M, D}), dg({D});
  ops::rms_norm_forward(ref, x.mat(), g.data(), 1e-6f, y.mat(), r.data());
  ops::rms_norm_backward(ref, x.mat(), g.data(), r.data(), dy.mat(), dx.mat(), dg.data());
  auto dx_ = cuda::upload(x), dg_ = cuda::upload(g), ddy = cuda::upload(dy);
  dtensor dyo({M, D}), dr({M}), ddx({M, D}), ddg({D});
  ops::rms_norm_forward(gpu, dx_.mat(), dg_.data(), 1e-6f, dyo.mat(), dr.data());
  ops::rms_norm_backward(gpu, dx_.mat(), dg_.data(), dr.data(), ddy.mat(), ddx.mat(), ddg.data());
  require_close(y.data(), host(dyo).data(), y.size(), 1e-5, 1e-6, "rms_norm y");
  require_close(dx.data(), host(ddx).data(), dx.size(), 1e-4, 1e-6, "rms_norm dx");
  require_close(dg.data(), host(ddg).data(), D, 1e-4, 1e-6, "rms_norm dg");
}

void layer_norm_case(index_t M, index_t D) {
  attnres::rng gen(2 + M + D);
  const auto x = random({M, D}, gen, 0.2, 2.0), g = random({D}, gen, 1.0, 0.3), b = random({D}, gen, 0.0, 0.5),
             dy = random({M, D}, gen);
  tensor<float> y({M, D}), mu({M}), s({M}), dx({M, D}), dg({D}), db({D});
  ops::layer_norm_forward(ref, x.mat(), g.data(), b.data(), 1e-5f, y.mat(), mu.data(), s.data());
  ops::layer_norm_backward(ref, x.mat(), g.data(), mu.data(), s.data(), dy.mat(), dx.mat(), dg.data(), db.data());
  auto dx_ = cuda::upload(x), dg_ = cuda::upload(g), db_ = cuda::upload(b), ddy = cuda::upload(dy);
  dtensor dyo({M, D}), dmu({M}), ds({M}), ddx({M, D}), ddg({D}), ddb({D});
  ops::layer_norm_forward(gpu, dx_.mat(), dg_.data(), db_.data(), 1e-5f, dyo.mat(), dmu.data(), ds.data());
  ops::layer_norm_backward(gpu, dx_.mat(), dg_.data(), dmu.data(), ds.data(), ddy.mat(), ddx.mat(), ddg.data(), ddb.data());
  require_close(y.data(), host(dyo).data(), y.size(), 1e-5, 1e-6, "layer_norm y");
  require_close(dx.data(), host(ddx).data(), dx.size(), 1e-4, 1e-6, "layer_norm dx");
  require_close(dg.data(), host(ddg).data(), D, 1e-4, 1e-6, "layer_norm dg");
  require_close(db.data(), host(ddb).data(), D, 1e-4, 1e-6, "layer_norm db");
}

// The memory operations of generic code on device views: add_to (a kernel) and copy (cudaMemcpy2D),
// strided, against the host versions.
void storage_ops_case(index_t M, index_t D) {
  attnres::rng gen(3 + M + D);
  const index_t S = D + 3;
  const auto a = random({M, S}, gen), b = random({M, S}, gen);
  tensor<float> want = b;
  attnres::add_to(attnres::const_matrix_view<float>(a.data(), M, D, S), attnres::matrix_view<float>(want.data(), M, D, S));
  auto da = cuda::upload(a), dbb = cuda::upload(b);
  attnres::add_to(attnres::const_matrix_view<float, device_space>(da.data(), M, D, S),
                  attnres::matrix_view<float, device_space>(dbb.data(), M, D, S));
  require_close(want.data(), host(dbb).data(), want.size(), 0.0, 0.0, "add_to");
  dtensor dc({M, D});
  attnres::copy(attnres::const_matrix_view<float, device_space>(da.data(), M, D, S), dc.mat());
  const auto c = host(dc);
  for (index_t t = 0; t < M; ++t)
    for (index_t d = 0; d < D; ++d) require(c[t * D + d] == a[t * S + d], "device-to-device copy");
  dtensor f({M, D});
  f.fill(1.5f);
  for (float v : host(f)) require(v == 1.5f, "device_tensor::fill");
}

void depth_case(index_t M, index_t D, index_t n) {
  attnres::rng gen(10 + M + D + n);
  std::vector<tensor<float>> v, r;
  std::vector<dtensor> dv, dr;
  for (index_t j = 0; j < n; ++j) {
    v.push_back(random({M, D}, gen, 0.1 * double(j), 1.0 + double(j)));
    r.emplace_back(std::vector<index_t>{M});
    ops::key_norm_stats(ref, v.back().mat(), 1e-6f, r.back().data());
    dv.push_back(cuda::upload(v.back()));
    dr.emplace_back(std::vector<index_t>{M});
    require(ops::key_norm_stats(gpu, dv.back().mat(), 1e-6f, dr.back().data()) == -1, "key_norm_stats: finite");
  }
  const auto w = random({D}, gen, 0.0, 0.5), g = random({D}, gen, 1.0, 0.2), G = random({M, D}, gen);
  auto dw_ = cuda::upload(w), dg_ = cuda::upload(g), dG = cuda::upload(G);
  std::vector<ops::depth_source<float>> hs;
  std::vector<ops::depth_source<float, device_space>> ds;
  for (index_t j = 0; j < n; ++j) {
    hs.push_back({v[j].mat(), r[j].data()});
    ds.push_back({dv[j].mat(), dr[j].data()});
  }
  // one-shot forward
  tensor<float> h({M, D}), a({n, M});
  dtensor dh({M, D}), da({n, M});
  ops::depth_attention_forward(ref, std::span<const ops::depth_source<float>>(hs), {w.data(), g.data()}, h.mat(), a.mat());
  ops::depth_attention_forward(gpu, std::span<const ops::depth_source<float, device_space>>(ds), {dw_.data(), dg_.data()},
                               dh.mat(), da.mat());
  require_close(h.data(), host(dh).data(), h.size(), 1e-5, 1e-5, "depth forward h");
  require_close(a.data(), host(da).data(), a.size(), 1e-5, 1e-7, "depth forward alpha");
  // two-phase: stats over the first n−1 sources, merge with the last as the partial
  if (n >= 2) {
    dtensor o({M, D}), m({M}), l({M}), lg({n - 1, M}), h2({M, D}), a2({n, M});
    const std::vector<ops::depth_query<float>> qs{{dw_.data(), dg_.data()}};
    const std::vector<ops::depth_stats<float, device_space>> st{{o.mat(), m.data(), l.data(), lg.mat()}};
    ops::depth_attention_stats(gpu, std::span<const ops::depth_source<float, device_space>>(ds.data(), n - 1),
                               std::span<const ops::depth_query<float>>(qs), std::span<const ops::depth_stats<float, device_space>>(st));
    ops::depth_attention_merge(gpu, st[0], &ds[n - 1], {dw_.data(), dg_.data()}, h2.mat(), a2.mat());
    require_close(h.data(), host(h2).data(), h.size(), 1e-5, 1e-5, "two-phase h");
    require_close(a.data(), host(a2).data(), a.size(), 1e-5, 1e-7, "two-phase alpha");
  }
  // backward
  tensor<float> c({M}), gw({D}), gg({D});
  ops::row_dots(ref, G.mat(), h.mat(), c.data());
  std::vector<tensor<float>> gsrc;
  std::vector<attnres::matrix_view<float>> gviews;
  for (index_t j = 0; j < n; ++j) gsrc.emplace_back(std::vector<index_t>{M, D});
  for (auto& t : gsrc) gviews.push_back(t.mat());
  const std::vector<ops::depth_query_grad<float>> pts{{{w.data(), g.data()}, a.mat(), c.data(), G.mat(), gw.data(), gg.data()}};
  ops::depth_attention_backward(ref, std::span<const ops::depth_source<float>>(hs), pts, gviews);
  dtensor dc({M}), dgw({D}), dgg({D});
  ops::row_dots(gpu, dG.mat(), dh.mat(), dc.data());
  std::vector<dtensor> dgsrc;
  std::vector<attnres::matrix_view<float, device_space>> dgviews;
  for (index_t j = 0; j < n; ++j) dgsrc.emplace_back(std::vector<index_t>{M, D});
  for (auto& t : dgsrc) dgviews.push_back(t.mat());
  const std::vector<ops::depth_query_grad<float, device_space>> dpts{
      {{dw_.data(), dg_.data()}, da.mat(), dc.data(), dG.mat(), dgw.data(), dgg.data()}};
  ops::depth_attention_backward(gpu, std::span<const ops::depth_source<float, device_space>>(ds),
                                std::span<const ops::depth_query_grad<float, device_space>>(dpts),
                                std::span<const attnres::matrix_view<float, device_space>>(dgviews));
  for (index_t j = 0; j < n; ++j)
    require_close(gsrc[j].data(), host(dgsrc[j]).data(), M * D, 1e-4, 1e-5, "depth backward dsource");
  require_close(gw.data(), host(dgw).data(), D, 1e-4, 1e-5, "depth backward dw");
}

void dense_case(index_t M, index_t K, index_t N) {
  attnres::rng gen(20 + M + K + N);
  const auto x = random({M, K}, gen), W = random({N, K}, gen), dy = random({M, N}, gen);
  tensor<float> y({M, N}), dx({M, K}), dW({N, K});
  ops::linear_forward(ref, x.mat(), W.mat(), y.mat());
  ops::linear_backward(ref, x.mat(), W.mat(), dy.mat(), dx.mat(), dW.mat());
  auto dx_ = cuda::upload(x), dW_ = cuda::upload(W), ddy = cuda::upload(dy);
  dtensor dyo({M, N}), gdx({M, K}), gdW({N, K});
  ops::linear_forward(gpu, dx_.mat(), dW_.mat(), dyo.mat());
  ops::linear_backward(gpu, dx_.mat(), dW_.mat(), ddy.mat(), gdx.mat(), gdW.mat());
  require_close(y.data(), host(dyo).data(), y.size(), 1e-4, 1e-5, "linear y");
  require_close(dx.data(), host(gdx).data(), dx.size(), 1e-4, 1e-5, "linear dx");
  require_close(dW.data(), host(gdW).data(), dW.size(), 1e-4, 1e-5, "linear dW");

  // activations on (M,N)
  const auto up = random({M, N}, gen);
  tensor<float> s({M, N}), sg({M, N}), su({M, N}), ge({M, N}), gb({M, N});
  ops::swiglu_forward(ref, y.mat(), up.mat(), s.mat());
  ops::swiglu_backward(ref, y.mat(), up.mat(), dy.mat(), sg.mat(), su.mat());
  ops::gelu_forward(ref, y.mat(), ge.mat());
  ops::gelu_backward(ref, y.mat(), dy.mat(), gb.mat());
  auto dup = cuda::upload(up);
  dtensor ds({M, N}), dsg({M, N}), dsu({M, N}), dge({M, N}), dgb({M, N});
  auto dyv = cuda::upload(y);
  ops::swiglu_forward(gpu, dyv.mat(), dup.mat(), ds.mat());
  ops::swiglu_backward(gpu, dyv.mat(), dup.mat(), ddy.mat(), dsg.mat(), dsu.mat());
  ops::gelu_forward(gpu, dyv.mat(), dge.mat());
  ops::gelu_backward(gpu, dyv.mat(), ddy.mat(), dgb.mat());
  require_close(s.data(), host(ds).data(), s.size(), 1e-5, 1e-6, "swiglu");
  require_close(sg.data(), host(dsg).data(), s.size(), 1e-5, 1e-6, "swiglu dgate");
  require_close(su.data(), host(dsu).data(), s.size(), 1e-5, 1e-6, "swiglu dup");
  require_close(ge.data(), host(dge).data(), s.size(), 1e-5, 1e-6, "gelu");
  require_close(gb.data(), host(dgb).data(), s.size(), 1e-5, 1e-6, "gelu backward");

  // cross-entropy over (M,N) logits
  std::vector<std::int32_t> t(static_cast<std::size_t>(M));
  for (index_t i = 0; i < M; ++i) t[i] = static_cast<std::int32_t>((3 * i + 1) % N);
  tensor<float> dl({M, N});
  const double loss = ops::cross_entropy(ref, y.mat(), t.data(), dl.mat(), 1.0f);
  attnres::cuda::device_tensor<std::int32_t> dt({M});
  cuda::copy_to_device(t.data(), dt.data(), M);
  dtensor ddl({M, N});
  const double gloss = ops::cross_entropy(gpu, dyv.mat(), dt.data(), ddl.mat(), 1.0f);
  require(std::abs(loss - gloss) <= 1e-9 * std::abs(loss) + 1e-12, "cross_entropy loss differs");
  require_close(dl.data(), host(ddl).data(), dl.size(), 1e-5, 1e-9, "cross_entropy dlogits");
}

void attention_case(index_t B, index_t seq, index_t H, index_t Dh) {
  attnres::rng gen(30 + B + seq + H + Dh);
  const index_t R = B * seq, HD = H * Dh;
  auto q = random({R, HD}, gen), k = random({R, HD}, gen);
  const auto v = random({R, HD}, gen), dout = random({R, HD}, gen);
  auto dq_ = cuda::upload(q), dk_ = cuda::upload(k);
  ops::rope_forward(ref, q.mat(), seq, H, 0, 10000.0);
  ops::rope_forward(ref, k.mat(), seq, H, 0, 10000.0);
  ops::rope_forward(gpu, dq_.mat(), seq, H, 0, 10000.0);
  ops::rope_forward(gpu, dk_.mat(), seq, H, 0, 10000.0);
  require_close(q.data(), host(dq_).data(), q.size(), 1e-5, 1e-6, "rope");
  tensor<float> o({R, HD}), P({B, H, seq, seq}), gq({R, HD}), gk({R, HD}), gv({R, HD});
  ops::causal_attention_forward(ref, q.mat(), k.mat(), v.mat(), B, seq, H, o.mat(), P.data());
  ops::causal_attention_backward(ref, q.mat(), k.mat(), v.mat(), P.data(), dout.mat(), B, seq, H, gq.mat(), gk.mat(), gv.mat());
  auto dv_ = cuda::upload(v), ddo = cuda::upload(dout);
  dtensor dO({R, HD}), dP({B, H, seq, seq}), dgq({R, HD}), dgk({R, HD}), dgv({R, HD});
  ops::causal_attention_forward(gpu, dq_.mat(), dk_.mat(), dv_.mat(), B, seq, H, dO.mat(), dP.data());
  ops::causal_attention_backward(gpu, dq_.mat(), dk_.mat(), dv_.mat(), dP.data(), ddo.mat(), B, seq, H, dgq.mat(),
                                 dgk.mat(), dgv.mat());
  require_close(o.data(), host(dO).data(), o.size(), 1e-4, 1e-6, "attention out");
  require_close(gv.data(), host(dgv).data(), gv.size(), 1e-4, 1e-6, "attention dv");
  if (seq > 1) require_close(gq.data(), host(dgq).data(), gq.size(), 1e-4, 1e-6, "attention dq");
}

void embedding_softmax_decode_case() {
  attnres::rng gen(50);
  const index_t V = 11, D = 13, M = 9;
  const auto table = random({V, D}, gen), dout = random({M, D}, gen);
  const std::vector<std::int32_t> tokens{3, 0, 10, 3, 3, 7, 0, 1, 10};
  tensor<float> e({M, D}), dt({V, D});
  ops::embedding_forward(ref, tokens.data(), M, table.mat(), e.mat());
  ops::embedding_backward(ref, tokens.data(), M, dout.mat(), dt.mat());
  attnres::cuda::device_tensor<std::int32_t> dtok({M});
  cuda::copy_to_device(tokens.data(), dtok.data(), M);
  auto dtable = cuda::upload(table), ddout = cuda::upload(dout);
  dtensor de({M, D}), ddt({V, D});
  ops::embedding_forward(gpu, dtok.data(), M, dtable.mat(), de.mat());
  ops::embedding_backward(gpu, dtok.data(), M, ddout.mat(), ddt.mat());
  require_close(e.data(), host(de).data(), e.size(), 0.0, 1e-30, "embedding forward");
  require_close(dt.data(), host(ddt).data(), dt.size(), 1e-6, 1e-7, "embedding backward");

  tensor<float> sm({M, D});
  ops::softmax_rows(ref, table.mat().middle_rows(0, 9), sm.mat());
  dtensor dsm({M, D});
  ops::softmax_rows(gpu, dtable.mat().middle_rows(0, 9), dsm.mat());
  require_close(sm.data(), host(dsm).data(), sm.size(), 1e-6, 1e-9, "softmax rows");

  const index_t B = 2, H = 3, Dh = 5, T_max = 8, n = 6;
  const auto q = random({B, H * Dh}, gen), kc = random({B, T_max, H * Dh}, gen), vc = random({B, T_max, H * Dh}, gen);
  tensor<float> o({B, H * Dh});
  ops::attention_decode(ref, q.mat(), kc.data(), vc.data(), n, T_max, H, o.mat());
  auto dq = cuda::upload(q), dkc = cuda::upload(kc), dvc = cuda::upload(vc);
  dtensor dO({B, H * Dh});
  ops::attention_decode(gpu, dq.mat(), dkc.data(), dvc.data(), n, T_max, H, dO.mat());
  require_close(o.data(), host(dO).data(), o.size(), 1e-5, 1e-6, "attention decode");
}

void adamw_case(index_t n) {
  attnres::rng gen(40 + n);
  auto p = random({n}, gen), m = random({n}, gen, 0, 0.1), v = random({n}, gen, 1, 0.1);
  for (float& x : v) x = std::abs(x);
  const auto g = random({n}, gen);
  auto dp = cuda::upload(p), dm = cuda::upload(m), dv = cuda::upload(v), dg = cuda::upload(g);
  const ops::adamw_step_args a{.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1, .step = 3};
  ops::adamw_step(ref, p.data(), g.data(), m.data(), v.data(), n, a);
  ops::adamw_step(gpu, dp.data(), dg.data(), dm.data(), dv.data(), n, a);
  require_close(p.data(), host(dp).data(), n, 1e-6, 1e-8, "adamw param");
  const double s1 = ops::sum_of_squares(ref, g.data(), n), s2 = ops::sum_of_squares(gpu, dg.data(), n);
  require(std::abs(s1 - s2) <= 1e-9 * s1, "sum_of_squares differs");
}

}  // namespace

int main() {
  if (cuda::device_count() == 0) {
    std::puts("skipped: no CUDA device");
    return skip_code;
  }
  suite s;
  for (index_t D : {1, 7, 13, 33}) {
    s.add("rms_norm M=5 D=" + std::to_string(D), [D] { rms_norm_case(5, D); });
    s.add("layer_norm M=5 D=" + std::to_string(D), [D] { layer_norm_case(5, D); });
    s.add("add_to, copy, fill M=4 D=" + std::to_string(D), [D] { storage_ops_case(4, D); });
    for (index_t n : {1, 2, 6}) s.add("depth attention M=37 D=" + std::to_string(D) + " n=" + std::to_string(n), [D, n] { depth_case(37, D, n); });
  }
  s.add("depth attention M=1 D=13 n=3", [] { depth_case(1, 13, 3); });
  for (index_t K : {1, 7, 64}) s.add("linear + activations + cross-entropy K=" + std::to_string(K), [K] { dense_case(9, K, 33); });
  s.add("attention B=1 T=1", [] { attention_case(1, 1, 2, 8); });
  s.add("attention B=2 T=9 H=3 Dh=6", [] { attention_case(2, 9, 3, 6); });
  s.add("embedding, softmax rows, KV-cache decode", [] { embedding_softmax_decode_case(); });
  s.add("adamw n=1", [] { adamw_case(1); });
  s.add("adamw n=10000", [] { adamw_case(10000); });
  s.add("out of device memory names the bytes", [] {
    try {
      dtensor huge({index_t(1) << 40});  // 4 TiB
    } catch (const cuda::device_memory_error& e) {
      require(std::string(e.what()).find("out of device memory allocating 4398046511104 bytes") != std::string::npos, e.what());
      return;
    }
    throw failure("no device_memory_error");
  });
  s.add("a target outside the vocabulary is a shape_error", [] {
    dtensor z({2, 5});
    attnres::cuda::device_tensor<std::int32_t> t({2});
    const std::int32_t bad[2] = {1, 9};
    cuda::copy_to_device(bad, t.data(), 2);
    try {
      ops::cross_entropy(gpu, z.mat(), t.data(), attnres::matrix_view<float, device_space>{}, 1.0f);
    } catch (const attnres::shape_error& e) {
      require(std::string(e.what()).find("target 9 at row 1 is outside the vocabulary [0, 5)") != std::string::npos, e.what());
      return;
    }
    throw failure("no shape_error");
  });
  return s.run();
}
