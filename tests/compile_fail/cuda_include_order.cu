// The generic code (model, layers, residual policies, trainer) calls ops by qualified name, so it
// must see the CUDA overloads declared before it: <attnres/cuda.hpp> has to come first. The wrong
// order is one clear #error, not pages of "no matching function" at the first LM<…, cuda>.
// The control includes only <attnres/cuda.hpp> (which includes the rest in the right order).
// (Compiled by nvcc; registered by tests/cuda_device/CMakeLists.txt.)
#ifndef ATTNRES_CF_CONTROL
#include <attnres/attnres.hpp>
#endif
#include <attnres/cuda.hpp>

int main() { return 0; }
