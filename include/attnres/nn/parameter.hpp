#pragma once
// A named, trainable parameter as the optimizer and the checkpoint code see it: a contiguous
// block of values with its gradient, its DESIGN.md tensor name, its shape, and whether AdamW
// decays it. Layers and residual policies own the storage; a model lists param_refs into it.

#include <attnres/core/tensor.hpp>

#include <string>
#include <vector>

namespace attnres {

template <class T>
struct param_ref {
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

template <class T>
using param_list = std::vector<param_ref<T>>;

}  // namespace attnres
