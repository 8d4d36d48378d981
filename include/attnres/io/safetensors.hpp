#pragma once
// safetensors: reading and atomically writing the safetensors tensor file format.
//
// Layout of a file (https://github.com/huggingface/safetensors):
//
//   [8 bytes]  N, the header length, an unsigned 64-bit little-endian integer
//   [N bytes]  the header: a UTF-8 JSON object
//                { "<tensor name>": { "dtype": "F32", "shape": [2, 3], "data_offsets": [b, e] },
//                  ...,
//                  "__metadata__": { "<key>": "<string value>", ... } }     (optional)
//   [rest]     the data buffer; tensor bytes are [b, e) relative to its start, row-major,
//              little-endian.
//
// The reader treats every file as hostile: each field is type-checked, every size computation is
// overflow-checked, every range is bounds-checked before a byte is touched, and any problem is an
// attnres::io_error whose message names the file and what is wrong. Elements are decoded with
// memcpy into unsigned integers (no unaligned pointer casts, correct on any host byte order).
//
// Policy choices (the format's spec leaves some room):
//  * Holes between tensors are accepted: they are harmless, because each tensor's range is still
//    checked against the buffer and against every other tensor. Trailing bytes after the last
//    tensor are rejected: they usually mean a truncated/rewritten header or concatenated files.
//  * Tensors may overlap nowhere; a zero-sized tensor may sit on a boundary but not strictly
//    inside another tensor's bytes.
//  * Duplicate keys in any JSON object are rejected (a plain JSON parser would silently keep one
//    of them, so two readers could disagree about what the file contains).
//  * The whole file is validated for every dtype of the format, but only F32 and F64 tensors can
//    be read; get() on e.g. a BF16 tensor throws "unsupported dtype 'BF16'". Unknown dtype strings
//    are rejected when the file is parsed, since their byte size cannot be checked.
//
// The writer stores tensors in sorted name order, back to back (no holes, as the reference
// implementation requires), after a header padded with spaces to a multiple of 8 bytes. Its JSON
// has sorted keys and no whitespace, so the same inputs always give the same bytes. save() is
// atomic: it writes a temporary file next to the target, fsyncs it and renames it over the
// target, so readers see either the old file or the complete new one. It uses POSIX calls.

#include <attnres/core/error.hpp>
#include <attnres/core/tensor.hpp>
#include <attnres/io/atomic_file.hpp>
#include <attnres/io/read_file.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>


namespace attnres::io {

// One tensor's header entry. [begin, end) is relative to the start of the data buffer.
struct tensor_info {
  std::string name;
  std::string dtype;
  std::vector<index_t> shape;
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
};

namespace detail {

// A header larger than this is refused before it is parsed (the reference uses the same limit);
// real headers are a few hundred bytes per tensor.
inline constexpr std::uint64_t max_header_bytes = 100'000'000;
// Legitimate headers nest 3 deep (root object > entry object > shape array). The limit leaves
// room for extra fields other writers may add while refusing "[[[[[[..." bombs.
inline constexpr int max_json_depth = 64;

// Byte size of one element of each dtype the format defines; 0 for an unknown dtype.
inline std::size_t dtype_size(std::string_view dtype) {
  static constexpr std::pair<std::string_view, std::size_t> table[] = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"F8_E8M0", 1},
      {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},     {"U32", 4},
      {"F32", 4},  {"I64", 8}, {"U64", 8}, {"F64", 8}};
  for (const auto& [name, size] : table)
    if (name == dtype) return size;
  return 0;
}

// Decodes a little-endian unsigned integer of type U from possibly unaligned bytes.
template <class U>
U load_le(const std::byte* p) {
  static_assert(std::is_unsigned_v<U>);
  std::array<unsigned char, sizeof(U)> b;
  std::memcpy(b.data(), p, sizeof(U));
  U v = 0;
  for (std::size_t i = 0; i < sizeof(U); ++i) v |= static_cast<U>(static_cast<U>(b[i]) << (8 * i));
  return v;
}

template <class U>
void store_le(std::byte* p, U v) {
  static_assert(std::is_unsigned_v<U>);
  std::array<unsigned char, sizeof(U)> b;
  for (std::size_t i = 0; i < sizeof(U); ++i) b[i] = static_cast<unsigned char>(v >> (8 * i));
  std::memcpy(p, b.data(), sizeof(U));
}

// The format stores IEEE 754 binary32/binary64; bit_cast to/from same-sized unsigned integers is
// only a faithful encoding if the host floats are IEEE too. IEEE also defines double -> float
// conversion of out-of-range values (they become +-inf), which get<float>() on F64 data relies on.
static_assert(std::numeric_limits<float>::is_iec559 && sizeof(float) == 4);
static_assert(std::numeric_limits<double>::is_iec559 && sizeof(double) == 8);

template <class F>
using bits_of = std::conditional_t<sizeof(F) == 4, std::uint32_t, std::uint64_t>;

inline std::string shape_string(const std::vector<index_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

// Reads a JSON value that must be a non-negative integer fitting std::uint64_t. nlohmann stores
// non-negative literals as unsigned, negative ones as signed (and "-0" as a signed zero).
inline bool json_to_u64(const nlohmann::json& j, std::uint64_t& out, bool& negative) {
  negative = false;
  if (j.is_number_unsigned()) {
    out = j.get<std::uint64_t>();
    return true;
  }
  if (j.is_number_integer()) {
    const auto v = j.get<std::int64_t>();
    if (v < 0) {
      negative = true;
      return false;
    }
    out = static_cast<std::uint64_t>(v);
    return true;
  }
  return false;
}

}  // namespace detail

class safetensors_file {
 public:
  // Reads the whole file into memory and parses it. Every error message names the path.
  static safetensors_file load(const std::filesystem::path& path) {
    const std::string source = path.string();
    std::ifstream in(path, std::ios::binary);
    expects<io_error>(in.is_open(), "safetensors '", source, "': cannot open file for reading");
    std::vector<std::byte> bytes = read_stream(in, "safetensors '" + source + "'");
    safetensors_file f;
    f.source_ = source;
    f.bytes_ = std::move(bytes);
    f.parse_self();
    return f;
  }

  // Parses an in-memory file (the bytes are copied). source_name is used in error messages.
  static safetensors_file parse(std::span<const std::byte> bytes,
                                std::string source_name = "<memory>") {
    safetensors_file f;
    f.source_ = std::move(source_name);
    f.bytes_.assign(bytes.begin(), bytes.end());
    f.parse_self();
    return f;
  }

  const std::string& source_name() const { return source_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  std::string metadata_value(std::string_view key) const {
    const auto it = metadata_.find(std::string(key));
    expects<io_error>(it != metadata_.end(), "safetensors '", source_, "': no metadata key '", key,
                      "'");
    return it->second;
  }

  // Tensor names in sorted order ("__metadata__" is never a tensor).
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    out.reserve(tensors_.size());
    for (const auto& [name, info] : tensors_) out.push_back(name);
    return out;
  }

  bool contains(std::string_view name) const { return tensors_.find(name) != tensors_.end(); }

  const tensor_info& info(std::string_view name) const {
    const auto it = tensors_.find(name);
    expects<io_error>(it != tensors_.end(), "safetensors '", source_, "': no tensor named '", name,
                      "' (the file has ", tensors_.size(), " tensors)");
    return it->second;
  }

  // The tensor's elements converted to T (float or double); the stored dtype must be F32 or F64.
  template <class T>
  tensor<T> get(std::string_view name) const {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                  "safetensors_file::get<T>: T must be float or double");
    const tensor_info& ti = info(name);
    tensor<T> out(ti.shape);
    // parse_self() proved [begin, end) lies in the data buffer and equals numel * dtype size,
    // which is also out.size() elements.
    const std::byte* src = bytes_.data() + data_start_ + ti.begin;
    if (ti.dtype == "F32")
      decode<float>(src, out);
    else if (ti.dtype == "F64")
      decode<double>(src, out);
    else
      throw io_error(attnres::detail::concat("safetensors '", source_, "': tensor '", name,
                                             "' has unsupported dtype '", ti.dtype,
                                             "' (only F32 and F64 can be read)"));
    return out;
  }

  // As get<T>(name), but the stored shape must equal expected_shape.
  template <class T>
  tensor<T> get(std::string_view name, const std::vector<index_t>& expected_shape) const {
    const tensor_info& ti = info(name);
    expects<io_error>(ti.shape == expected_shape, "safetensors '", source_, "': tensor '", name,
                      "' has shape ", detail::shape_string(ti.shape), " but ",
                      detail::shape_string(expected_shape), " was expected");
    return get<T>(name);
  }

 private:
  safetensors_file() = default;

  template <class F, class T>
  static void decode(const std::byte* src, tensor<T>& out) {
    using U = detail::bits_of<F>;
    T* dst = out.data();
    const auto n = static_cast<std::size_t>(out.size());
    for (std::size_t i = 0; i < n; ++i)
      dst[i] = static_cast<T>(std::bit_cast<F>(detail::load_le<U>(src + i * sizeof(F))));
  }

  template <class... Parts>
  [[noreturn]] void fail(Parts&&... parts) const {
    throw io_error(
        attnres::detail::concat("safetensors '", source_, "': ", std::forward<Parts>(parts)...));
  }

  // Validates bytes_ and fills metadata_, tensors_ and data_start_.
  void parse_self() {
    using nlohmann::json;
    const std::uint64_t size = bytes_.size();
    if (size < 8) fail("file is ", size, " bytes, shorter than the 8-byte header length");
    const std::uint64_t n = detail::load_le<std::uint64_t>(bytes_.data());
    if (n > detail::max_header_bytes)
      fail("header length ", n, " exceeds the ", detail::max_header_bytes, "-byte limit");
    if (n > size - 8)
      fail("header length ", n, " exceeds the ", size - 8, " bytes that follow it (truncated file?)");
    data_start_ = static_cast<std::size_t>(8 + n);
    const std::uint64_t data_size = size - 8 - n;

    // The callback rejects duplicate keys and deep nesting while parsing. It throws io_error,
    // which nlohmann lets through untouched.
    std::vector<std::set<std::string>> open_objects;
    const auto check = [&](int depth, json::parse_event_t event, json& parsed) {
      switch (event) {
        case json::parse_event_t::object_start:
        case json::parse_event_t::array_start:
          if (depth >= detail::max_json_depth)
            fail("header JSON nests deeper than ", detail::max_json_depth, " levels");
          if (event == json::parse_event_t::object_start) open_objects.emplace_back();
          break;
        case json::parse_event_t::object_end:
          if (!open_objects.empty()) open_objects.pop_back();
          break;
        case json::parse_event_t::key:
          if (!open_objects.empty() && parsed.is_string() &&
              !open_objects.back().insert(parsed.get_ref<const std::string&>()).second)
            fail("header JSON has duplicate key '", parsed.get_ref<const std::string&>(), "'");
          break;
        default:
          break;
      }
      return true;
    };

    const char* first = reinterpret_cast<const char*>(bytes_.data() + 8);
    // nlohmann's lexer takes a NUL byte for the end of input, so "{...}\0<anything>" would parse
    // as "{...}". A raw NUL is never valid JSON (not even inside strings), so refuse it here
    // rather than read a different header than other implementations would.
    if (const void* nul = std::memchr(first, '\0', static_cast<std::size_t>(n)))
      fail("header is not valid JSON: NUL byte at header offset ",
           static_cast<const char*>(nul) - first);
    json header;
    try {
      header = json::parse(first, first + n, check);
    } catch (const json::exception& e) {
      // nlohmann also rejects invalid UTF-8 here, so the header is guaranteed to be UTF-8.
      fail("header is not valid JSON: ", e.what());
    }
    if (!header.is_object()) fail("header is not a JSON object but ", header.type_name());

    struct range {
      std::uint64_t begin, end;
      const std::string* name;
    };
    std::vector<range> ranges;
    for (auto& [name, entry] : header.items()) {
      if (name == "__metadata__") {
        read_metadata(entry);
        continue;
      }
      tensor_info ti = read_entry(name, entry, data_size);
      auto [it, inserted] = tensors_.emplace(name, std::move(ti));
      if (!inserted) fail("duplicate tensor '", name, "'");  // unreachable: keys are unique
      ranges.push_back({it->second.begin, it->second.end, &it->first});
    }

    // Sorted by (begin, end), a range overlaps an earlier one iff it starts before the furthest
    // end seen so far. Comparing with the running maximum (not just the predecessor) also catches
    // a range nested inside a long earlier one.
    std::sort(ranges.begin(), ranges.end(), [](const range& a, const range& b) {
      return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    std::uint64_t furthest = 0;
    const std::string* furthest_name = nullptr;
    for (const range& r : ranges) {
      if (furthest_name && r.begin < furthest)
        fail("tensors '", *furthest_name, "' and '", *r.name, "' overlap in the data buffer");
      if (r.end >= furthest) {
        furthest = r.end;
        furthest_name = r.name;
      }
    }
    if (furthest != data_size)
      fail(data_size - furthest, " trailing bytes after the last tensor (data buffer is ",
           data_size, " bytes, tensors end at ", furthest, ")");
  }

  void read_metadata(const nlohmann::json& m) {
    if (!m.is_object()) fail("__metadata__ is not a JSON object but ", m.type_name());
    for (const auto& [key, value] : m.items()) {
      if (!value.is_string())
        fail("__metadata__ value for key '", key, "' is not a string but ", value.type_name());
      metadata_.emplace(key, value.get<std::string>());
    }
  }

  tensor_info read_entry(const std::string& name, const nlohmann::json& e,
                         std::uint64_t data_size) const {
    if (!e.is_object()) fail("entry '", name, "' is not a JSON object but ", e.type_name());
    tensor_info ti;
    ti.name = name;

    const auto dt = e.find("dtype");
    if (dt == e.end()) fail("tensor '", name, "' has no \"dtype\"");
    if (!dt->is_string()) fail("tensor '", name, "': \"dtype\" is not a string");
    ti.dtype = dt->get<std::string>();
    const std::size_t elem = detail::dtype_size(ti.dtype);
    if (elem == 0) fail("tensor '", name, "' has unknown dtype '", ti.dtype, "'");

    const auto sh = e.find("shape");
    if (sh == e.end()) fail("tensor '", name, "' has no \"shape\"");
    if (!sh->is_array()) fail("tensor '", name, "': \"shape\" is not an array");
    // Overflow guard: the product of the nonzero dims must fit index_t. Then every prefix product
    // fits too (it is 0 or a sub-product), so code that multiplies dims in any order (such as the
    // tensor constructor) is safe even when a zero dim makes the total 0.
    const auto max_index = static_cast<std::uint64_t>(std::numeric_limits<index_t>::max());
    std::uint64_t nonzero_product = 1;
    bool has_zero = false;
    for (const auto& d : *sh) {
      std::uint64_t v = 0;
      bool negative = false;
      if (!detail::json_to_u64(d, v, negative)) {
        if (negative) fail("tensor '", name, "' has negative dimension ", d.dump());
        fail("tensor '", name, "' has non-integer dimension ", d.dump());
      }
      if (v == 0) {
        has_zero = true;
      } else {
        if (v > max_index / nonzero_product)
          fail("tensor '", name, "': shape ", sh->dump(), " element count overflows");
        nonzero_product *= v;
      }
      ti.shape.push_back(static_cast<index_t>(v));
    }
    const std::uint64_t numel = has_zero ? 0 : nonzero_product;
    if (numel > std::numeric_limits<std::uint64_t>::max() / elem)
      fail("tensor '", name, "': shape ", sh->dump(), " byte size overflows");
    const std::uint64_t nbytes = numel * elem;

    const auto off = e.find("data_offsets");
    if (off == e.end()) fail("tensor '", name, "' has no \"data_offsets\"");
    if (!off->is_array() || off->size() != 2)
      fail("tensor '", name, "': \"data_offsets\" is not an array of two integers");
    bool negative = false;
    if (!detail::json_to_u64((*off)[0], ti.begin, negative) ||
        !detail::json_to_u64((*off)[1], ti.end, negative))
      fail("tensor '", name, "': \"data_offsets\" ", off->dump(),
           " are not two non-negative integers");
    if (ti.begin > ti.end)
      fail("tensor '", name, "': \"data_offsets\" ", off->dump(), " are decreasing");
    if (ti.end > data_size)
      fail("tensor '", name, "': end offset ", ti.end, " is beyond the ", data_size,
           "-byte data buffer");
    if (ti.end - ti.begin != nbytes)
      fail("tensor '", name, "': \"data_offsets\" span ", ti.end - ti.begin, " bytes but ",
           ti.dtype, " shape ", detail::shape_string(ti.shape), " needs ", nbytes);
    return ti;
  }

  std::string source_;
  std::vector<std::byte> bytes_;  // the whole file
  std::size_t data_start_ = 0;    // offset of the data buffer in bytes_
  std::map<std::string, std::string> metadata_;
  std::map<std::string, tensor_info, std::less<>> tensors_;  // less<> allows string_view lookup
};

class safetensors_writer {
 public:
  // Sets (or replaces) a metadata entry.
  void set_metadata(std::string key, std::string value) {
    metadata_[std::move(key)] = std::move(value);
  }

  // Stores float tensors as F32 and double tensors as F64.
  template <class T>
  void add(std::string name, const tensor<T>& t) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                  "safetensors_writer::add: T must be float or double");
    std::span<const T> data(t.data(), static_cast<std::size_t>(t.size()));
    if constexpr (std::is_same_v<T, float>)
      add_f32(std::move(name), data, t.shape());
    else
      add_f64(std::move(name), data, t.shape());
  }

  void add_f32(std::string name, std::span<const float> data, std::vector<index_t> shape) {
    add_raw<float>(std::move(name), "F32", data, std::move(shape));
  }
  void add_f64(std::string name, std::span<const double> data, std::vector<index_t> shape) {
    add_raw<double>(std::move(name), "F64", data, std::move(shape));
  }

  // The complete file. Deterministic: depends only on the tensors and metadata added.
  std::vector<std::byte> bytes() const {
    using nlohmann::json;
    json header = json::object();
    std::uint64_t offset = 0;
    for (const auto& [name, e] : entries_) {  // std::map: sorted name order
      header[name] = {{"dtype", e.dtype},
                      {"shape", e.shape},
                      {"data_offsets", {offset, offset + e.data.size()}}};
      offset += e.data.size();
    }
    if (!metadata_.empty()) header["__metadata__"] = metadata_;

    std::string text;
    try {
      // Compact, sorted keys (nlohmann objects are std::maps), non-ASCII escaped as \uXXXX: the
      // same bytes as Python's json.dumps(sort_keys=True, separators=(",", ":")).
      text = header.dump(-1, ' ', true);
    } catch (const json::exception& e) {
      throw io_error(attnres::detail::concat(
          "safetensors_writer: a tensor name or metadata string is not valid UTF-8: ", e.what()));
    }
    // Pad so the data buffer starts 8-byte aligned, as the reference writer does.
    text.append((8 - text.size() % 8) % 8, ' ');
    expects<io_error>(text.size() <= detail::max_header_bytes, "safetensors_writer: header of ",
                      text.size(), " bytes exceeds the ", detail::max_header_bytes,
                      "-byte limit readers enforce");

    std::vector<std::byte> out(8 + text.size() + offset);
    detail::store_le<std::uint64_t>(out.data(), text.size());
    std::memcpy(out.data() + 8, text.data(), text.size());
    std::byte* p = out.data() + 8 + text.size();
    for (const auto& [name, e] : entries_) {
      if (!e.data.empty()) std::memcpy(p, e.data.data(), e.data.size());
      p += e.data.size();
    }
    return out;
  }

  // Atomically replaces (or creates) path (io/atomic_file.hpp): on failure the target is
  // untouched, no temporary file is left, and io_error is thrown.
  void save(const std::filesystem::path& path) const {
    const std::vector<std::byte> data = bytes();
    write_file_atomically(path, data, "safetensors");
  }

 private:
  struct entry {
    std::string dtype;
    std::vector<index_t> shape;
    std::vector<std::byte> data;  // little-endian element bytes
  };

  template <class F>
  void add_raw(std::string name, const char* dtype, std::span<const F> data,
               std::vector<index_t> shape) {
    expects<io_error>(!name.empty(), "safetensors_writer: empty tensor name");
    expects<io_error>(name != "__metadata__",
                      "safetensors_writer: \"__metadata__\" is reserved and cannot name a tensor");
    expects<io_error>(entries_.find(name) == entries_.end(),
                      "safetensors_writer: duplicate tensor name '", name, "'");
    // Same overflow rule as the reader: the product of the nonzero dims must fit index_t.
    index_t nonzero_product = 1;
    bool has_zero = false;
    for (index_t d : shape) {
      expects<shape_error>(d >= 0, "safetensors_writer: tensor '", name, "' has negative dimension ",
                           d);
      if (d == 0) {
        has_zero = true;
        continue;
      }
      expects<shape_error>(nonzero_product <= std::numeric_limits<index_t>::max() / d,
                           "safetensors_writer: tensor '", name, "' shape ",
                           detail::shape_string(shape), " element count overflows");
      nonzero_product *= d;
    }
    const index_t numel = has_zero ? 0 : nonzero_product;
    expects<shape_error>(static_cast<std::size_t>(numel) == data.size(),
                         "safetensors_writer: tensor '", name, "' has shape ",
                         detail::shape_string(shape), " (", numel, " elements) but ", data.size(),
                         " values were given");
    entry e{dtype, std::move(shape), std::vector<std::byte>(data.size() * sizeof(F))};
    using U = detail::bits_of<F>;
    for (std::size_t i = 0; i < data.size(); ++i)
      detail::store_le<U>(e.data.data() + i * sizeof(F), std::bit_cast<U>(data[i]));
    entries_.emplace(std::move(name), std::move(e));
  }

  std::map<std::string, entry> entries_;  // sorted: fixes the file layout
  std::map<std::string, std::string> metadata_;
};

}  // namespace attnres::io
