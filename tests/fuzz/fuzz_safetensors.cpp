// libFuzzer entry point for the safetensors reader: any byte string must either parse or throw
// attnres::error, and every tensor of a file that parses must be readable or throw the same.
// Anything else (a crash, a sanitizer report, another exception type) is a bug.
//
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude \
//       tests/fuzz/fuzz_safetensors.cpp -o fuzz_safetensors
//   mkdir -p corpus && cp tests/fuzz/corpus/* corpus/ && ./fuzz_safetensors corpus
//
// (Fuzz into a scratch copy: libFuzzer adds its findings to the first corpus directory.)

#include <attnres/io/safetensors.hpp>

#include <cstddef>
#include <cstdint>
#include <span>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  try {
    const auto file = attnres::io::safetensors_file::parse(bytes, "<fuzz>");
    (void)file.metadata();
    for (const auto& name : file.names()) {
      try {
        const auto t = file.get<float>(name);
        (void)t;
      } catch (const attnres::error&) {
        // Unsupported dtypes are refused per tensor; the rest of the file is still readable.
      }
    }
  } catch (const attnres::error&) {
  }
  return 0;
}
