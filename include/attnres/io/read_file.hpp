#pragma once
// read_stream: every remaining byte of a stream, read in chunks rather than trusting a size
// query, which a file being modified (or a special file) can get wrong. `what` names the source
// in the io_error thrown on a read error.

#include <attnres/core/error.hpp>

#include <cstddef>
#include <istream>
#include <string_view>
#include <vector>

namespace attnres::io {

template <class Byte = std::byte>
std::vector<Byte> read_stream(std::istream& in, std::string_view what) {
  static_assert(sizeof(Byte) == 1, "read_stream reads bytes");
  std::vector<Byte> bytes;
  constexpr std::size_t chunk = std::size_t{1} << 20;
  for (;;) {
    const std::size_t old = bytes.size();
    bytes.resize(old + chunk);
    in.read(reinterpret_cast<char*>(bytes.data() + old), static_cast<std::streamsize>(chunk));
    const auto got = static_cast<std::size_t>(in.gcount());
    bytes.resize(old + got);
    if (got < chunk) break;
  }
  expects<io_error>(!in.bad(), what, ": read error");
  return bytes;
}

}  // namespace attnres::io
