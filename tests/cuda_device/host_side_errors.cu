// The CUDA backend's error paths that need no GPU: they run on every machine with the toolkit
// (this one has no device) and must pass, not skip. A missing device, a missing device for an
// allocation, and a configuration beyond a kernel's limits all end in clear attnres errors.

#include "harness.hpp"

#include <attnres/cuda.hpp>

#include <climits>
#include <string>

using namespace attnres_cuda_test;
namespace ops = attnres::ops;
using attnres::device_space;
using attnres::index_t;

namespace {
template <class E, class F>
std::string message_of(F f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  throw failure("no exception was thrown");
}
bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }
}  // namespace

int main() {
  suite s;
  const bool has_device = attnres::cuda::device_count() > 0;
  s.add("backend_traits<cuda>::available() answers at run time", [&] {
    require(attnres::backend_traits<attnres::backend::cuda>::available() == has_device, "available() != device_count() > 0");
  });
  if (!has_device) {
    s.add("no device: require_device names the problem", [] {
      const auto m = message_of<attnres::cuda::cuda_error>([] { attnres::cuda::require_device("this test"); });
      require(contains(m, "needs a CUDA device, but none is available"), m);
    });
    s.add("no device: allocating a device_tensor says so", [] {
      const auto m = message_of<attnres::error>([] { attnres::cuda::device_tensor<float> t({16, 16}); });
      require(contains(m, "needs a CUDA device"), m);
    });
    s.add("no device: constructing LM<..., backend::cuda> is a cuda_error that says so, not a crash", [] {
      using model = attnres::LM<attnres::BlockAttnRes<2>, attnres::RMSNorm, attnres::SwiGLU, attnres::backend::cuda>;
      const auto m = message_of<attnres::cuda::cuda_error>(
          [] { model lm({.vocab = 16, .d_model = 8, .n_heads = 2, .n_layers = 1, .d_ff = 12}); });
      require(contains(m, "LM<..., backend::cuda> needs a CUDA device, but none is available"), m);
      require(contains(m, "use backend::cpu on this machine"), m);
    });
  }
  s.add("a size beyond cuBLAS's 32-bit range is a config_error before any launch", [] {
    // never dereferenced: the limit is checked first
    const attnres::const_matrix_view<float, device_space> x(nullptr, index_t(INT_MAX) + 1, 8), W(nullptr, 4, 8);
    const attnres::matrix_view<float, device_space> y(nullptr, index_t(INT_MAX) + 1, 4);
    const auto m = message_of<attnres::config_error>([&] { ops::linear_forward(attnres::backend::cuda{}, x, W, y); });
    require(contains(m, "linear_forward (cuda): M = 2147483648 exceeds the 32-bit range"), m);
  });
  s.add("a grid beyond CUDA's block limit is a config_error before any launch", [] {
    const index_t rows = index_t(INT_MAX) * 256;
    const auto m = message_of<attnres::config_error>([&] { ops::cuda_detail::grid_for(rows, "rms_norm_forward"); });
    require(contains(m, "grid limit"), m);
  });
  s.add("shape errors are checked before any launch", [] {
    const attnres::const_matrix_view<float, device_space> x(nullptr, 3, 8);
    const attnres::matrix_view<float, device_space> y(nullptr, 3, 7);
    const auto m = message_of<attnres::shape_error>(
        [&] { ops::rms_norm_forward(attnres::backend::cuda{}, x, static_cast<const float*>(nullptr), 1e-6f, y, nullptr); });
    require(contains(m, "rms_norm_forward: y is (3,7) but x is (3,8)"), m);
  });
  return s.run();
}
