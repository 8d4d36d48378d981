// backend::cuda has no fallback: an op without a CUDA kernel (here LayerNorm) is a compile-time
// error naming the op, never a silent trip to host code. The control calls RMSNorm instead.
// (Compiled by nvcc; registered by tests/cuda_device/CMakeLists.txt.)
#include <attnres/cuda.hpp>

void normalise(attnres::cuda::device_tensor<float>& x, const float* gain, const float* bias) {
#ifdef ATTNRES_CF_CONTROL
  attnres::ops::rms_norm_forward(attnres::backend::cuda{}, x.mat(), gain, 1e-6f, x.mat(), nullptr);
  (void)bias;
#else
  attnres::ops::layer_norm_forward(attnres::backend::cuda{}, x.mat(), gain, bias, 1e-6f, x.mat(), nullptr, nullptr);
#endif
}

int main() { return 0; }
