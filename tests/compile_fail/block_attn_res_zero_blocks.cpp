// BlockAttnRes<0> has no blocks: it must not compile.
#include <attnres/residual/block_attn_res.hpp>

#ifdef ATTNRES_CF_CONTROL
using Policy = attnres::BlockAttnRes<1>::with<float>;
#else
using Policy = attnres::BlockAttnRes<0>::with<float>;
#endif

int main() {
  Policy p({.n_sublayers = 2, .d_model = 4});
  return p.n_sublayers();
}
