// One include, one policy, one forward pass: what an embedding project does first.
#include <attnres/attnres.hpp>

#include <cstdio>

int main() {
  using Policy = attnres::BlockAttnRes<2>::with<float>;
  const Policy policy({.n_sublayers = 4, .d_model = 8});
  auto params = policy.init_params();
  Policy::Cache cache;
  attnres::tensor<float> x0({3, 8}), h({3, 8});
  x0.fill(1.0f);
  policy.begin(cache, x0.mat(), false);
  for (int l = 1; l <= 4; ++l) {
    policy.gather(params, cache, l, h.mat());
    policy.push(cache, l, h.mat());
  }
  policy.gather(params, cache, 5, h.mat());
  std::printf("consumer ok: %s, output sources %td, h[0] = %g\n", attnres::version_string, policy.n_sources(5), h[0]);
  return h[0] == 0.0f;
}
