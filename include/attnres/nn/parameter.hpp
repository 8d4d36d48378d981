#pragma once
// A named, trainable parameter as the optimizer and the checkpoint code see it: a contiguous
// block of values with its gradient, its DESIGN.md tensor name, its shape, and whether AdamW
// decays it. Layers and residual policies own the storage; a model lists param_refs into it.
// Space is where value and grad live: host for reference/cpu, device for CUDA (then the pointers
// are device pointers, read and written through fill_n / copy_to_host / copy_from_host and ops).

// Marks code generic over the backend (it calls ops:: by qualified name): the CUDA ops must be
// declared before it, which <attnres/cuda.hpp> arranges and ops/cuda/launch.hpp checks.
#ifndef ATTNRES_BACKEND_GENERIC_CODE
#define ATTNRES_BACKEND_GENERIC_CODE 1
#endif

#include <attnres/core/memory_space.hpp>
#include <attnres/core/tensor.hpp>

#include <string>
#include <vector>

namespace attnres {

template <class T, class Space = host_space>
struct param_ref {
  using memory_space = Space;

  std::string name;            // e.g. "layers.3.attn.wq.weight" (docs: DESIGN.md tensor names)
  std::vector<index_t> shape;  // e.g. {D, D}; PyTorch Linear layout [out, in]
  T* value = nullptr;          // size() contiguous values
  T* grad = nullptr;           // size() contiguous gradients (same layout)
  bool decay = true;           // false for norm gains, biases and pseudo-queries

  index_t size() const {
    index_t n = 1;
    for (index_t d : shape) n *= d;
    return n;
  }
};

template <class T, class Space = host_space>
using param_list = std::vector<param_ref<T, Space>>;

}  // namespace attnres
