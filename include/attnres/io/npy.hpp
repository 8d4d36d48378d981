#pragma once
// Writing NumPy .npy files (format version 1.0): a float32 array that numpy.load and
// torch.from_numpy read directly. Used by `attnres forward` to hand logits to Python.

#include <attnres/core/error.hpp>
#include <attnres/core/tensor.hpp>
#include <attnres/io/atomic_file.hpp>

#include <bit>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace attnres::io {

// Bytes of a little-endian float32 .npy file holding `data` with the given C-order shape.
inline std::vector<std::byte> npy_bytes(const float* data, const std::vector<index_t>& shape) {
  std::string dims;  // Python tuple syntax: "()", "(5,)", "(2, 3)"
  index_t n = 1;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    expects<shape_error>(shape[i] >= 0, "npy: negative dimension ", shape[i]);
    dims += (i ? ", " : "") + std::to_string(shape[i]);
    n *= shape[i];
  }
  if (shape.size() == 1) dims += ",";
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  // magic(6) + version(2) + header length(2) + header, padded with spaces and a final newline
  // so the data starts on a 64-byte boundary
  const std::size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::vector<std::byte> out(10 + header.size() + static_cast<std::size_t>(n) * 4);
  const unsigned char magic[8] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
  std::memcpy(out.data(), magic, 8);
  const std::uint16_t hl = static_cast<std::uint16_t>(header.size());
  out[8] = static_cast<std::byte>(hl & 0xff);
  out[9] = static_cast<std::byte>(hl >> 8);
  std::memcpy(out.data() + 10, header.data(), header.size());
  std::byte* p = out.data() + 10 + header.size();
  for (index_t i = 0; i < n; ++i) {
    const std::uint32_t bits = std::bit_cast<std::uint32_t>(data[i]);
    for (int b = 0; b < 4; ++b) p[i * 4 + b] = static_cast<std::byte>((bits >> (8 * b)) & 0xff);
  }
  return out;
}

// Writes the file atomically (io/atomic_file.hpp).
inline void save_npy(const std::filesystem::path& path, const float* data, const std::vector<index_t>& shape) {
  const auto bytes = npy_bytes(data, shape);
  write_file_atomically(path, bytes, "npy");
}

}  // namespace attnres::io
