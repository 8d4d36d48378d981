#pragma once
// bf16 copies of a layer's weights for decoding (LM::start_decode with decode_weights::bf16).
// A decode step reads every weight matrix once per token and does two flops per weight, so it
// runs at the speed the weights stream from memory; stored in bf16 (core/bf16.hpp) they are half
// the bytes. Only the matrices of the matrix-vector products are copied (attention's W_q, W_k,
// W_v, W_o, the MLP's, the output head); norms, the residual policy and the KV cache stay in
// float, and so does all arithmetic.
//
//   decode_weights                 f32 (the model's own weights) or bf16 (rounded copies)
//   detail::round_to_bf16(src, dst, name)
//       dst = src rounded to bf16 (ties to even); throws numeric_error naming the tensor and
//       the element when a value is NaN or Inf, or rounds to Inf (|x| ≥ 3.3961e38)

#include <attnres/core/bf16.hpp>
#include <attnres/core/error.hpp>
#include <attnres/core/memory_space.hpp>
#include <attnres/core/tensor.hpp>

#include <string>
#include <string_view>
#include <type_traits>

namespace attnres {

enum class decode_weights { f32, bf16 };

inline std::string_view to_string(decode_weights w) { return w == decode_weights::bf16 ? "bf16" : "f32"; }

inline decode_weights parse_decode_weights(std::string_view s) {
  if (s == "f32") return decode_weights::f32;
  if (s == "bf16") return decode_weights::bf16;
  throw usage_error("decode weights '" + std::string(s) + "': expected f32 or bf16");
}

namespace detail {
// Layers offer bf16 decode weights (Bf16Params, to_bf16, a decode/forward that takes them) for
// float scalars in host memory: the bf16 kernels are cpu kernels over float inputs.
template <class T, class Space>
concept bf16_decodable = std::is_same_v<T, float> && std::is_same_v<Space, host_space>;

inline void round_to_bf16(const_matrix_view<float> src, matrix_view<bf16> dst, const std::string& name) {
  expects<shape_error>(src.rows == dst.rows && src.cols == dst.cols, "round_to_bf16: ", name, " is (", src.rows, ",",
                       src.cols, ") but its bf16 copy is (", dst.rows, ",", dst.cols, ")");
  for (index_t i = 0; i < src.rows; ++i) {
    const index_t bad = to_bf16(src.row(i), dst.row(i), src.cols);
    expects<numeric_error>(bad < 0, name, ": element (", i, ",", bad, ") = ", bad < 0 ? 0.0f : src(i, bad),
                           " has no finite bf16 value; decoding with bf16 weights needs finite weights below 3.39e38");
  }
}

template <class Tensor>
tensor<bf16> bf16_copy(const Tensor& t, const std::string& name) {
  tensor<bf16> out({t.rows(), t.cols()});
  round_to_bf16(t.mat(), out.mat(), name);
  return out;
}
}  // namespace detail

}  // namespace attnres
