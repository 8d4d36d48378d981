// The cuBLAS argument plans of the CUDA linear op (ops/cuda/row/gemm_plan.hpp), run on the CPU
// through a column-major GEMM with BLAS semantics, against the reference linear op — the proof
// of the row-major ↔ column-major transpose trick without a GPU. Views with row strides larger
// than their widths check the leading dimensions.

#include "test_util.hpp"

#include <attnres/ops/cuda/row/gemm_plan.hpp>
#include <attnres/ops/linear.hpp>

using namespace attnres_test;
namespace ops = attnres::ops;
namespace row = attnres::ops::row;
namespace backend = attnres::backend;
using attnres::tensor;

TEST_CASE("cuda gemm plans: forward, dx and dW equal the reference linear op", "[cuda][row][linear]") {
  const auto M = GENERATE(index_t(1), index_t(5));
  const auto K = GENERATE(index_t(1), index_t(7), index_t(33));
  const auto N = GENERATE(index_t(1), index_t(13));
  CAPTURE(M, K, N);
  attnres::rng gen(7 + M * 100 + K * 10 + N);
  // padded storage: every view's row stride exceeds its width by 3
  const auto xs = random_tensor<float>({M, K + 3}, gen), Ws = random_tensor<float>({N, K + 3}, gen);
  const auto dys = random_tensor<float>({M, N + 3}, gen);
  const attnres::const_matrix_view<float> x(xs.data(), M, K, K + 3), W(Ws.data(), N, K, K + 3), dy(dys.data(), M, N, N + 3);

  tensor<float> y1({M, N}), ys({M, N + 3});
  ops::linear_forward(backend::reference{}, x, W, y1.mat());
  ys.fill(42.0f);  // β = 0: whatever was there is overwritten
  row::column_major_gemm(row::linear_forward_plan(x.data, x.stride, W.data, W.stride, ys.data(), N + 3, M, K, N));
  tensor<float> y2({M, N});
  attnres::copy(attnres::const_matrix_view<float>(ys.data(), M, N, N + 3), y2.mat());
  REQUIRE_CLOSE(y1.data(), y2.data(), y1.size(), 1e-5, 1e-6);

  // the gradients accumulate: start from the same non-zero values
  const auto dx0 = random_tensor<float>({M, K}, gen), dW0 = random_tensor<float>({N, K}, gen);
  tensor<float> dx1 = dx0, dW1 = dW0, dxs({M, K + 3}), dWs({N, K + 3});
  attnres::copy(dx0.mat(), attnres::matrix_view<float>(dxs.data(), M, K, K + 3));
  attnres::copy(dW0.mat(), attnres::matrix_view<float>(dWs.data(), N, K, K + 3));
  ops::linear_backward(backend::reference{}, x, W, dy, dx1.mat(), dW1.mat());
  row::column_major_gemm(row::linear_dx_plan(W.data, W.stride, dy.data, dy.stride, dxs.data(), K + 3, M, K, N));
  row::column_major_gemm(row::linear_dW_plan(x.data, x.stride, dy.data, dy.stride, dWs.data(), K + 3, M, K, N));
  tensor<float> dx2({M, K}), dW2({N, K});
  attnres::copy(attnres::const_matrix_view<float>(dxs.data(), M, K, K + 3), dx2.mat());
  attnres::copy(attnres::const_matrix_view<float>(dWs.data(), N, K, K + 3), dW2.mat());
  REQUIRE_CLOSE(dx1.data(), dx2.data(), dx1.size(), 1e-5, 1e-6);
  REQUIRE_CLOSE(dW1.data(), dW2.data(), dW1.size(), 1e-5, 1e-6);
}
