// A host view passed to a CUDA op does not compile: the memory space is part of a view's type,
// and every CUDA op refuses host views with a static_assert that says what to do instead.
// (Compiled by nvcc; registered by tests/cuda_device/CMakeLists.txt.)
#include <attnres/cuda.hpp>

void normalise(attnres::tensor<float>& host_x, attnres::cuda::device_tensor<float>& dev_x, const float* gain) {
#ifdef ATTNRES_CF_CONTROL
  attnres::ops::rms_norm_forward(attnres::backend::cuda{}, dev_x.mat(), gain, 1e-6f, dev_x.mat(), nullptr);
  (void)host_x;
#else
  attnres::ops::rms_norm_forward(attnres::backend::cuda{}, host_x.mat(), gain, 1e-6f, host_x.mat(), nullptr);
  (void)dev_x;
#endif
}

int main() { return 0; }
