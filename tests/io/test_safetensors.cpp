// Tests for attnres/io/safetensors.hpp: round trips, deterministic bytes, one test per hostile
// input the reader must refuse, truncation at every length, and atomic save.

#include <attnres/io/safetensors.hpp>

#include "catch.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;
using attnres::io_error;
using attnres::tensor;
using attnres::io::safetensors_file;
using attnres::io::safetensors_writer;

namespace {

constexpr const char* kSource = "hostile.safetensors";

// A file made by hand: 8-byte little-endian length (the header's own unless overridden), the
// header text, then `data_bytes` bytes of data.
std::vector<std::byte> raw_file(std::string_view header, std::size_t data_bytes = 0,
                                std::optional<std::uint64_t> length = std::nullopt) {
  const std::uint64_t n = length.value_or(header.size());
  std::vector<std::byte> out(8 + header.size() + data_bytes, std::byte{0});
  for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = std::byte((n >> (8 * i)) & 0xff);
  std::memcpy(out.data() + 8, header.data(), header.size());
  return out;
}

safetensors_file parse(const std::vector<std::byte>& bytes) {
  return safetensors_file::parse(bytes, kSource);
}

// A one-tensor header with the given entry body.
std::string one(std::string_view entry) { return "{\"t\":" + std::string(entry) + "}"; }

tensor<float> iota_f32(std::vector<attnres::index_t> shape, float start) {
  tensor<float> t(std::move(shape));
  for (attnres::index_t i = 0; i < t.size(); ++i) t[i] = start + 0.25f * static_cast<float>(i);
  return t;
}

tensor<double> iota_f64(std::vector<attnres::index_t> shape, double start) {
  tensor<double> t(std::move(shape));
  for (attnres::index_t i = 0; i < t.size(); ++i) t[i] = start - 1.0 / 3.0 * static_cast<double>(i);
  return t;
}

safetensors_writer sample_writer() {
  safetensors_writer w;
  w.set_metadata("model", "attnres");
  w.set_metadata("L", "4");
  w.add("w.f32", iota_f32({2, 3}, 1.0f));
  w.add("b.f64", iota_f64({3}, 2.0));
  w.add("scalar", iota_f64({}, 7.0));
  w.add("empty", tensor<float>({0, 4}));
  return w;
}

// A fresh, empty directory under the system temp dir, removed on destruction.
struct temp_dir {
  fs::path path;
  temp_dir() {
    path = fs::temp_directory_path() /
           ("attnres_safetensors_test_" + std::to_string(::getpid()) + "_" +
            std::to_string(counter()++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::permissions(path, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(path, ec);
  }
  static int& counter() {
    static int c = 0;
    return c;
  }
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(path)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }
};

std::vector<std::byte> read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::vector<char> c((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> out(c.size());
  if (!c.empty()) std::memcpy(out.data(), c.data(), c.size());
  return out;
}

void write_all(const fs::path& p, const std::vector<std::byte>& bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// Round trips and layout
// ------------------------------------------------------------------------------------------------

TEST_CASE("safetensors: F32 and F64 round trip with metadata", "[io][safetensors]") {
  const auto f = safetensors_file::parse(sample_writer().bytes());

  CHECK(f.names() == std::vector<std::string>{"b.f64", "empty", "scalar", "w.f32"});
  CHECK(f.metadata() == std::map<std::string, std::string>{{"L", "4"}, {"model", "attnres"}});
  CHECK(f.metadata_value("model") == "attnres");
  CHECK(f.contains("w.f32"));
  CHECK_FALSE(f.contains("w"));
  CHECK_FALSE(f.contains("__metadata__"));

  CHECK(f.info("w.f32").dtype == "F32");
  CHECK(f.info("b.f64").dtype == "F64");
  CHECK(f.info("w.f32").shape == std::vector<attnres::index_t>{2, 3});

  const auto w = f.get<float>("w.f32", {2, 3});
  const auto w_expected = iota_f32({2, 3}, 1.0f);
  REQUIRE(w.size() == 6);
  for (attnres::index_t i = 0; i < 6; ++i) CHECK(w[i] == w_expected[i]);

  const auto b = f.get<double>("b.f64", {3});
  const auto b_expected = iota_f64({3}, 2.0);
  for (attnres::index_t i = 0; i < 3; ++i) CHECK(b[i] == b_expected[i]);  // bit-exact, not approximate

  const auto s = f.get<double>("scalar");
  CHECK(s.shape().empty());
  REQUIRE(s.size() == 1);
  CHECK(s[0] == 7.0);

  const auto e = f.get<float>("empty");
  CHECK(e.shape() == std::vector<attnres::index_t>{0, 4});
  CHECK(e.size() == 0);
}

TEST_CASE("safetensors: dtype conversion on read", "[io][safetensors]") {
  const auto f = safetensors_file::parse(sample_writer().bytes());
  const auto w = f.get<double>("w.f32");  // F32 widened
  CHECK(w[1] == 1.25);
  const auto b = f.get<float>("b.f64");  // F64 narrowed
  CHECK(b[1] == static_cast<float>(2.0 - 1.0 / 3.0));
}

TEST_CASE("safetensors: special values survive the round trip", "[io][safetensors]") {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> v{0.0f, -0.0f, inf, -inf, std::numeric_limits<float>::quiet_NaN(),
                             std::numeric_limits<float>::denorm_min()};
  safetensors_writer w;
  w.add_f32("v", v, {6});
  const auto t = safetensors_file::parse(w.bytes()).get<float>("v");
  CHECK(std::signbit(t[1]));
  CHECK(t[2] == inf);
  CHECK(t[3] == -inf);
  CHECK(std::isnan(t[4]));
  CHECK(t[5] == std::numeric_limits<float>::denorm_min());
}

TEST_CASE("safetensors: writer output is deterministic and laid out as specified",
          "[io][safetensors]") {
  const auto a = sample_writer().bytes();
  const auto b = sample_writer().bytes();
  CHECK(a == b);

  // Insertion order and metadata order must not matter either.
  safetensors_writer w;
  w.add("empty", tensor<float>({0, 4}));
  w.add("scalar", iota_f64({}, 7.0));
  w.add("b.f64", iota_f64({3}, 2.0));
  w.add("w.f32", iota_f32({2, 3}, 1.0f));
  w.set_metadata("L", "4");
  w.set_metadata("model", "attnres");
  CHECK(w.bytes() == a);

  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | std::to_integer<std::uint64_t>(a[static_cast<std::size_t>(i)]);
  CHECK(n % 8 == 0);
  const std::string header(reinterpret_cast<const char*>(a.data() + 8), n);
  const std::string json = header.substr(0, header.find_last_not_of(' ') + 1);
  CHECK(json ==
        "{\"__metadata__\":{\"L\":\"4\",\"model\":\"attnres\"},"
        "\"b.f64\":{\"data_offsets\":[0,24],\"dtype\":\"F64\",\"shape\":[3]},"
        "\"empty\":{\"data_offsets\":[24,24],\"dtype\":\"F32\",\"shape\":[0,4]},"
        "\"scalar\":{\"data_offsets\":[24,32],\"dtype\":\"F64\",\"shape\":[]},"
        "\"w.f32\":{\"data_offsets\":[32,56],\"dtype\":\"F32\",\"shape\":[2,3]}}");
  CHECK(header.size() - json.size() < 8);  // only the padding follows the JSON
  CHECK(a.size() == 8 + n + 56);

  // Element bytes are little-endian IEEE: 1.0f is 00 00 80 3f.
  const std::size_t w_start = 8 + n + 32;
  CHECK(a[w_start + 0] == std::byte{0x00});
  CHECK(a[w_start + 2] == std::byte{0x80});
  CHECK(a[w_start + 3] == std::byte{0x3f});
}

TEST_CASE("safetensors: no metadata means no __metadata__ entry", "[io][safetensors]") {
  safetensors_writer w;
  w.add_f64("x", std::vector<double>{1.0, 2.0}, {2});
  const auto bytes = w.bytes();
  const std::string all(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  CHECK(all.find("__metadata__") == std::string::npos);
  const auto f = safetensors_file::parse(bytes);
  CHECK(f.metadata().empty());
  CHECK(f.names() == std::vector<std::string>{"x"});
}

TEST_CASE("safetensors: an empty writer makes a valid empty file", "[io][safetensors]") {
  const auto f = safetensors_file::parse(safetensors_writer{}.bytes());
  CHECK(f.names().empty());
  CHECK(f.metadata().empty());
}

TEST_CASE("safetensors: non-ASCII names and metadata round trip", "[io][safetensors]") {
  safetensors_writer w;
  w.set_metadata("auteur", "Zo\xC3\xA9");
  w.add_f32("poids.\xC3\xA9t\xC3\xA9", std::vector<float>{1.0f}, {1});
  const auto f = safetensors_file::parse(w.bytes());
  CHECK(f.metadata_value("auteur") == "Zo\xC3\xA9");
  CHECK(f.contains("poids.\xC3\xA9t\xC3\xA9"));
}

TEST_CASE("safetensors: re-encoding the golden files reproduces them byte for byte",
          "[io][safetensors]") {
  // tests/golden/make_golden.py uses the same canonical layout as safetensors_writer.
#ifdef ATTNRES_GOLDEN_DIR
  const fs::path dir = ATTNRES_GOLDEN_DIR;
#else
  const fs::path dir = fs::path(__FILE__).parent_path().parent_path() / "golden" / "data";
#endif
  if (!fs::is_directory(dir)) {
    WARN("golden data not found at " << dir << "; skipped");
    return;
  }
  int checked = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".safetensors") continue;
    INFO(entry.path());
    const auto original = read_all(entry.path());
    const auto f = safetensors_file::load(entry.path());
    safetensors_writer w;
    for (const auto& [k, v] : f.metadata()) w.set_metadata(k, v);
    for (const auto& name : f.names()) {
      REQUIRE(f.info(name).dtype == "F64");
      w.add(name, f.get<double>(name));
    }
    CHECK(w.bytes() == original);
    ++checked;
  }
  CHECK(checked > 0);
}

// ------------------------------------------------------------------------------------------------
// Lookup errors
// ------------------------------------------------------------------------------------------------

TEST_CASE("safetensors: lookup errors name the tensor, key and shapes", "[io][safetensors]") {
  const auto f = safetensors_file::parse(sample_writer().bytes(), "model.safetensors");
  REQUIRE_THROWS_AS(f.info("nope"), io_error);
  REQUIRE_THROWS_WITH(f.info("nope"), attnres_test::contains("no tensor named 'nope'") &&
                                          attnres_test::contains("model.safetensors"));
  REQUIRE_THROWS_WITH(f.get<float>("nope"), attnres_test::contains("'nope'"));
  REQUIRE_THROWS_AS(f.metadata_value("missing"), io_error);
  REQUIRE_THROWS_WITH(f.metadata_value("missing"), attnres_test::contains("no metadata key 'missing'"));
  REQUIRE_THROWS_AS(f.get<float>("w.f32", {3, 2}), io_error);
  REQUIRE_THROWS_WITH(f.get<float>("w.f32", {3, 2}),
                      attnres_test::contains("'w.f32'") && attnres_test::contains("shape [2,3]") &&
                          attnres_test::contains("[3,2] was expected"));
  REQUIRE_THROWS_WITH(f.get<float>("w.f32", {6}), attnres_test::contains("[6] was expected"));
}

// ------------------------------------------------------------------------------------------------
// Writer misuse
// ------------------------------------------------------------------------------------------------

TEST_CASE("safetensors: writer refuses duplicates, reserved names and bad shapes",
          "[io][safetensors]") {
  safetensors_writer w;
  w.add("a", tensor<float>({2}));
  REQUIRE_THROWS_AS(w.add("a", tensor<double>({2})), io_error);
  REQUIRE_THROWS_WITH(w.add("a", tensor<float>({2})), attnres_test::contains("duplicate tensor name 'a'"));
  REQUIRE_THROWS_WITH(w.add("__metadata__", tensor<float>({1})), attnres_test::contains("reserved"));
  REQUIRE_THROWS_WITH(w.add("", tensor<float>({1})), attnres_test::contains("empty tensor name"));
  const std::vector<float> three{1, 2, 3};
  REQUIRE_THROWS_AS(w.add_f32("b", three, {2, 2}), attnres::shape_error);
  REQUIRE_THROWS_WITH(w.add_f32("b", three, {2, 2}), attnres_test::contains("3 values were given"));
  REQUIRE_THROWS_WITH(w.add_f32("b", three, {-3}), attnres_test::contains("negative dimension"));
  const attnres::index_t big = attnres::index_t{1} << 40;
  REQUIRE_THROWS_WITH(w.add_f32("b", three, {big, big}), attnres_test::contains("overflows"));
  // Failed adds leave the writer unchanged.
  CHECK(safetensors_file::parse(w.bytes()).names() == std::vector<std::string>{"a"});
}

TEST_CASE("safetensors: writer refuses names that are not UTF-8", "[io][safetensors]") {
  safetensors_writer w;
  w.add("bad\xFF", tensor<float>({1}));
  REQUIRE_THROWS_AS(w.bytes(), io_error);
  REQUIRE_THROWS_WITH(w.bytes(), attnres_test::contains("UTF-8"));
}

// ------------------------------------------------------------------------------------------------
// Hostile files: each must throw io_error naming the file and the problem.
// ------------------------------------------------------------------------------------------------

TEST_CASE("safetensors hostile: file shorter than 8 bytes", "[io][safetensors][hostile]") {
  for (std::size_t n = 0; n < 8; ++n) {
    const std::vector<std::byte> bytes(n, std::byte{0});
    REQUIRE_THROWS_AS(parse(bytes), io_error);
    REQUIRE_THROWS_WITH(parse(bytes), attnres_test::contains("shorter than the 8-byte header length") &&
                                          attnres_test::contains(kSource));
  }
}

TEST_CASE("safetensors hostile: absurd header length", "[io][safetensors][hostile]") {
  // Longer than the file.
  REQUIRE_THROWS_WITH(parse(raw_file("{}", 0, 3)), attnres_test::contains("header length 3 exceeds the 2 bytes"));
  REQUIRE_THROWS_WITH(parse(raw_file("{}", 0, std::numeric_limits<std::uint64_t>::max())),
                      attnres_test::contains("header length 18446744073709551615 exceeds"));
  // Over the 100 MB limit (checked before the file size, so no big buffer is needed).
  REQUIRE_THROWS_WITH(parse(raw_file("{}", 0, 100'000'001)),
                      attnres_test::contains("exceeds the 100000000-byte limit"));
}

TEST_CASE("safetensors hostile: header is not valid JSON", "[io][safetensors][hostile]") {
  for (const char* h : {"", "{", "{\"a\":}", "{} x", "{/*c*/}", "nul"}) {
    INFO(h);
    REQUIRE_THROWS_AS(parse(raw_file(h)), io_error);
    REQUIRE_THROWS_WITH(parse(raw_file(h)),
                        attnres_test::contains("header is not valid JSON") && attnres_test::contains(kSource));
  }
  // NUL inside the declared header length (nlohmann alone would stop reading at it).
  REQUIRE_THROWS_WITH(parse(raw_file(std::string_view("{}\0\0", 4))),
                      attnres_test::contains("not valid JSON: NUL byte at header offset 2"));
  REQUIRE_THROWS_WITH(parse(raw_file(std::string_view("{}\0{\"x\":1}", 10))),
                      attnres_test::contains("NUL byte"));
  // Invalid UTF-8 in a key.
  REQUIRE_THROWS_WITH(parse(raw_file("{\"\xC3\x28\":{}}")), attnres_test::contains("not valid JSON"));
}

TEST_CASE("safetensors hostile: header is not an object", "[io][safetensors][hostile]") {
  for (const char* h : {"[]", "42", "\"str\"", "null", "true"}) {
    INFO(h);
    REQUIRE_THROWS_WITH(parse(raw_file(h)), attnres_test::contains("header is not a JSON object"));
  }
}

TEST_CASE("safetensors hostile: duplicate keys and deep nesting", "[io][safetensors][hostile]") {
  const std::string e = R"({"dtype":"F32","shape":[1],"data_offsets":[0,4]})";
  REQUIRE_THROWS_WITH(parse(raw_file("{\"t\":" + e + ",\"t\":" + e + "}", 4)),
                      attnres_test::contains("duplicate key 't'"));
  REQUIRE_THROWS_WITH(
      parse(raw_file(R"({"t":{"dtype":"F32","dtype":"F64","shape":[1],"data_offsets":[0,4]}})", 4)),
      attnres_test::contains("duplicate key 'dtype'"));
  REQUIRE_THROWS_WITH(parse(raw_file(R"({"__metadata__":{"a":"1","a":"2"}})")),
                      attnres_test::contains("duplicate key 'a'"));
  const std::string deep = "{\"x\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
  REQUIRE_THROWS_WITH(parse(raw_file(deep)), attnres_test::contains("nests deeper than"));
}

TEST_CASE("safetensors hostile: entry not an object", "[io][safetensors][hostile]") {
  REQUIRE_THROWS_WITH(parse(raw_file(one("5"))),
                      attnres_test::contains("entry 't' is not a JSON object"));
  REQUIRE_THROWS_WITH(parse(raw_file(one("[]"))), attnres_test::contains("entry 't' is not a JSON object"));
}

TEST_CASE("safetensors hostile: missing or mistyped fields", "[io][safetensors][hostile]") {
  REQUIRE_THROWS_WITH(parse(raw_file(one(R"({"shape":[1],"data_offsets":[0,4]})"), 4)),
                      attnres_test::contains("tensor 't' has no \"dtype\""));
  REQUIRE_THROWS_WITH(parse(raw_file(one(R"({"dtype":32,"shape":[1],"data_offsets":[0,4]})"), 4)),
                      attnres_test::contains("\"dtype\" is not a string"));
  REQUIRE_THROWS_WITH(parse(raw_file(one(R"({"dtype":"F32","data_offsets":[0,4]})"), 4)),
                      attnres_test::contains("tensor 't' has no \"shape\""));
  REQUIRE_THROWS_WITH(parse(raw_file(one(R"({"dtype":"F32","shape":1,"data_offsets":[0,4]})"), 4)),
                      attnres_test::contains("\"shape\" is not an array"));
  REQUIRE_THROWS_WITH(parse(raw_file(one(R"({"dtype":"F32","shape":[1]})"), 4)),
                      attnres_test::contains("tensor 't' has no \"data_offsets\""));
  REQUIRE_THROWS_WITH(
      parse(raw_file(one(R"({"dtype":"F32","shape":[1],"data_offsets":{"a":0}})"), 4)),
      attnres_test::contains("\"data_offsets\" is not an array of two integers"));
}

TEST_CASE("safetensors hostile: unsupported and unknown dtypes", "[io][safetensors][hostile]") {
  // BF16 is a valid safetensors dtype: the file parses, but the tensor cannot be read.
  const auto f = parse(raw_file(one(R"({"dtype":"BF16","shape":[2],"data_offsets":[0,4]})"), 4));
  CHECK(f.info("t").dtype == "BF16");
  REQUIRE_THROWS_AS(f.get<float>("t"), io_error);
  REQUIRE_THROWS_WITH(f.get<float>("t"), attnres_test::contains("unsupported dtype 'BF16'") &&
                                             attnres_test::contains(kSource));
  REQUIRE_THROWS_WITH(parse(raw_file(one(R"({"dtype":"I64","shape":[1],"data_offsets":[0,8]})"), 8))
                          .get<double>("t"),
                      attnres_test::contains("unsupported dtype 'I64'"));
  // A string that is no dtype at all: its byte size is unknown, so the file is refused.
  REQUIRE_THROWS_WITH(parse(raw_file(one(R"({"dtype":"Q7","shape":[1],"data_offsets":[0,4]})"), 4)),
                      attnres_test::contains("unknown dtype 'Q7'"));
  REQUIRE_THROWS_WITH(parse(raw_file(one(R"({"dtype":"f32","shape":[1],"data_offsets":[0,4]})"), 4)),
                      attnres_test::contains("unknown dtype 'f32'"));
}

TEST_CASE("safetensors hostile: negative or non-integer dimensions", "[io][safetensors][hostile]") {
  REQUIRE_THROWS_WITH(parse(raw_file(one(R"({"dtype":"F32","shape":[-1],"data_offsets":[0,0]})"))),
                      attnres_test::contains("negative dimension -1"));
  for (const char* d : {"1.5", "2.0", "\"2\"", "true", "null", "[2]", "1e3", "99999999999999999999"}) {
    INFO(d);
    const std::string h = one(std::string(R"({"dtype":"F32","shape":[)") + d +
                              R"(],"data_offsets":[0,8]})");
    REQUIRE_THROWS_WITH(parse(raw_file(h, 8)), attnres_test::contains("non-integer dimension"));
  }
}

TEST_CASE("safetensors hostile: shape element count overflow", "[io][safetensors][hostile]") {
  // 2^32 * 2^32 wraps to 0 in 64 bits, which would match data_offsets [0,0] without the guard.
  REQUIRE_THROWS_WITH(
      parse(raw_file(one(R"({"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]})"))),
      attnres_test::contains("element count overflows"));
  // Over index_t's range even though a zero dim makes the total 0 (the tensor constructor
  // multiplies the dims in order and would overflow on the first two).
  REQUIRE_THROWS_WITH(
      parse(raw_file(
          one(R"({"dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0]})"))),
      attnres_test::contains("element count overflows"));
  REQUIRE_THROWS_WITH(
      parse(raw_file(one(R"({"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,0]})"))),
      attnres_test::contains("element count overflows"));
  // numel fits but numel * 8 bytes does not.
  REQUIRE_THROWS_WITH(
      parse(raw_file(one(R"({"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,0]})"))),
      attnres_test::contains("byte size overflows"));
  // Zero dims with small others are fine.
  const auto f = parse(raw_file(one(R"({"dtype":"F32","shape":[0,3],"data_offsets":[0,0]})")));
  CHECK(f.get<float>("t").shape() == std::vector<attnres::index_t>{0, 3});
}

TEST_CASE("safetensors hostile: bad data_offsets", "[io][safetensors][hostile]") {
  const auto with = [](const char* offsets) {
    return raw_file(one(std::string(R"({"dtype":"F32","shape":[1],"data_offsets":)") + offsets +
                        "}"),
                    8);
  };
  for (const char* o : {"[0]", "[0,4,8]", "[]", "0"}) {
    INFO(o);
    REQUIRE_THROWS_WITH(parse(with(o)), attnres_test::contains("not an array of two integers"));
  }
  for (const char* o : {"[-4,0]", "[0,4.0]", "[\"0\",4]", "[0,null]", "[0,18446744073709551616]"}) {
    INFO(o);
    REQUIRE_THROWS_WITH(parse(with(o)), attnres_test::contains("are not two non-negative integers"));
  }
  REQUIRE_THROWS_WITH(parse(with("[8,4]")), attnres_test::contains("are decreasing"));
}

TEST_CASE("safetensors hostile: end beyond the data buffer", "[io][safetensors][hostile]") {
  REQUIRE_THROWS_WITH(parse(raw_file(one(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})"), 4)),
                      attnres_test::contains("end offset 8 is beyond the 4-byte data buffer"));
  REQUIRE_THROWS_WITH(
      parse(raw_file(
          one(R"({"dtype":"F32","shape":[0],"data_offsets":[18446744073709551615,18446744073709551615]})"))),
      attnres_test::contains("is beyond the 0-byte data buffer"));
}

TEST_CASE("safetensors hostile: byte size does not match shape and dtype",
          "[io][safetensors][hostile]") {
  REQUIRE_THROWS_WITH(parse(raw_file(one(R"({"dtype":"F32","shape":[3],"data_offsets":[0,8]})"), 8)),
                      attnres_test::contains("span 8 bytes but F32 shape [3] needs 12"));
  REQUIRE_THROWS_WITH(parse(raw_file(one(R"({"dtype":"F64","shape":[],"data_offsets":[0,4]})"), 4)),
                      attnres_test::contains("needs 8"));
}

TEST_CASE("safetensors hostile: overlapping tensors", "[io][safetensors][hostile]") {
  REQUIRE_THROWS_WITH(
      parse(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                     R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                     12)),
      attnres_test::contains("tensors 'a' and 'b' overlap"));
  // Same range twice.
  REQUIRE_THROWS_WITH(
      parse(raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                     R"("b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                     4)),
      attnres_test::contains("overlap"));
  // Nested inside a long earlier range, after a non-overlapping neighbour.
  REQUIRE_THROWS_WITH(
      parse(raw_file(R"({"long":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                     R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},)"
                     R"("c":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                     16)),
      attnres_test::contains("overlap"));
  // A zero-sized tensor strictly inside another's bytes.
  REQUIRE_THROWS_WITH(
      parse(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                     R"("z":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})",
                     8)),
      attnres_test::contains("tensors 'a' and 'z' overlap"));
  // Zero-sized tensors on boundaries are fine.
  const auto f = parse(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                R"("y":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},)"
                                R"("z":{"dtype":"F32","shape":[0],"data_offsets":[8,8]}})",
                                8));
  CHECK(f.names().size() == 3);
}

TEST_CASE("safetensors: holes are accepted, trailing bytes are not", "[io][safetensors][hostile]") {
  auto bytes = raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                        R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                        12);
  const std::size_t data = bytes.size() - 12;
  bytes[data + 10] = std::byte{0x60};  // 3.5f is 0x40600000, stored little-endian
  bytes[data + 11] = std::byte{0x40};
  const auto f = parse(bytes);
  CHECK(f.get<float>("a")[0] == 0.0f);
  CHECK(f.get<float>("b")[0] == 3.5f);

  REQUIRE_THROWS_WITH(parse(raw_file(one(R"({"dtype":"F32","shape":[1],"data_offsets":[0,4]})"), 6)),
                      attnres_test::contains("2 trailing bytes after the last tensor"));
  REQUIRE_THROWS_WITH(parse(raw_file("{}", 1)), attnres_test::contains("1 trailing bytes"));
}

TEST_CASE("safetensors hostile: metadata not an object of strings", "[io][safetensors][hostile]") {
  REQUIRE_THROWS_WITH(parse(raw_file(R"({"__metadata__":["a"]})")),
                      attnres_test::contains("__metadata__ is not a JSON object"));
  REQUIRE_THROWS_WITH(parse(raw_file(R"({"__metadata__":"x"})")),
                      attnres_test::contains("__metadata__ is not a JSON object"));
  REQUIRE_THROWS_WITH(parse(raw_file(R"({"__metadata__":{"a":"1","b":2}})")),
                      attnres_test::contains("__metadata__ value for key 'b' is not a string"));
  REQUIRE_THROWS_WITH(parse(raw_file(R"({"__metadata__":{"a":{"b":"c"}}})")),
                      attnres_test::contains("key 'a' is not a string"));
}

TEST_CASE("safetensors hostile: __metadata__ shaped like a tensor is metadata, not a tensor",
          "[io][safetensors][hostile]") {
  REQUIRE_THROWS_WITH(
      parse(raw_file(R"({"__metadata__":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4)),
      attnres_test::contains("__metadata__ value for key 'data_offsets' is not a string"));
  const auto f = parse(raw_file(R"({"__metadata__":{"dtype":"F32"}})"));
  CHECK(f.names().empty());
  CHECK_FALSE(f.contains("__metadata__"));
  CHECK(f.metadata_value("dtype") == "F32");
}

TEST_CASE("safetensors hostile: every truncation of a valid file throws", "[io][safetensors][hostile]") {
  const auto full = sample_writer().bytes();
  REQUIRE_NOTHROW(parse(full));
  for (std::size_t n = 0; n < full.size(); ++n) {
    INFO("prefix length " << n);
    // Copy into an exactly-sized buffer so the sanitizers would see any read past its end.
    const std::vector<std::byte> prefix(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
    REQUIRE_THROWS_AS(parse(prefix), io_error);
  }
}

TEST_CASE("safetensors hostile: single-byte corruptions never crash", "[io][safetensors][hostile]") {
  const auto full = sample_writer().bytes();
  for (std::size_t i = 0; i < full.size(); ++i) {
    for (unsigned char x : {0x01, 0x80, 0xff}) {
      auto bad = full;
      bad[i] ^= std::byte{x};
      try {
        const auto f = parse(bad);
        for (const auto& name : f.names()) {
          try {
            (void)f.get<float>(name);
          } catch (const io_error&) {  // e.g. the dtype was flipped to an unsupported one
          }
        }
      } catch (const io_error&) {
      }
    }
  }
  SUCCEED();
}

// ------------------------------------------------------------------------------------------------
// Files on disk
// ------------------------------------------------------------------------------------------------

TEST_CASE("safetensors: save then load", "[io][safetensors][file]") {
  temp_dir dir;
  const fs::path p = dir.path / "model.safetensors";
  sample_writer().save(p);
  CHECK(read_all(p) == sample_writer().bytes());
  const auto f = safetensors_file::load(p);
  CHECK(f.metadata_value("model") == "attnres");
  CHECK(f.get<float>("w.f32", {2, 3})[5] == 2.25f);
  CHECK(dir.entries() == std::vector<std::string>{"model.safetensors"});

  // Overwriting an existing file replaces it.
  safetensors_writer w;
  w.add_f32("only", std::vector<float>{9.0f}, {1});
  w.save(p);
  CHECK(safetensors_file::load(p).names() == std::vector<std::string>{"only"});
  CHECK(dir.entries() == std::vector<std::string>{"model.safetensors"});
}

TEST_CASE("safetensors: load errors name the file", "[io][safetensors][file]") {
  temp_dir dir;
  const fs::path missing = dir.path / "missing.safetensors";
  REQUIRE_THROWS_AS(safetensors_file::load(missing), io_error);
  REQUIRE_THROWS_WITH(safetensors_file::load(missing),
                      attnres_test::contains(missing.string()) && attnres_test::contains("cannot open"));

  const fs::path bad = dir.path / "bad.safetensors";
  write_all(bad, raw_file("[]"));
  REQUIRE_THROWS_WITH(safetensors_file::load(bad),
                      attnres_test::contains(bad.string()) && attnres_test::contains("not a JSON object"));

  const fs::path empty = dir.path / "empty.safetensors";
  write_all(empty, {});
  REQUIRE_THROWS_WITH(safetensors_file::load(empty),
                      attnres_test::contains(empty.string()) && attnres_test::contains("shorter than"));

  REQUIRE_THROWS_AS(safetensors_file::load(dir.path), io_error);  // a directory
}

TEST_CASE("safetensors: failed save leaves the target intact and no temp files",
          "[io][safetensors][file]") {
  const auto w = sample_writer();

  SECTION("target is a directory (rename fails)") {
    temp_dir dir;
    const fs::path target = dir.path / "model.safetensors";
    fs::create_directory(target);
    write_all(target / "inside", raw_file("{}"));
    REQUIRE_THROWS_AS(w.save(target), io_error);
    REQUIRE_THROWS_WITH(w.save(target), attnres_test::contains(target.string()) &&
                                            attnres_test::contains("cannot rename"));
    CHECK(fs::is_directory(target));
    CHECK(read_all(target / "inside") == raw_file("{}"));
    CHECK(dir.entries() == std::vector<std::string>{"model.safetensors"});
  }

  SECTION("target directory does not exist") {
    temp_dir dir;
    const fs::path target = dir.path / "no_such_dir" / "model.safetensors";
    REQUIRE_THROWS_WITH(w.save(target), attnres_test::contains(target.string()) &&
                                            attnres_test::contains("cannot create temporary file"));
    CHECK(dir.entries().empty());
  }

  SECTION("target directory is not writable") {
    temp_dir dir;
    const fs::path target = dir.path / "model.safetensors";
    const auto old = raw_file("{}");
    write_all(target, old);
    fs::permissions(dir.path, fs::perms::owner_read | fs::perms::owner_exec);
    if (::access(dir.path.c_str(), W_OK) == 0) {
      // root (or CAP_DAC_OVERRIDE) ignores directory permissions: nothing to test.
      WARN("directory permissions are not enforced for this user; skipped");
    } else {
      REQUIRE_THROWS_AS(w.save(target), io_error);
      REQUIRE_THROWS_WITH(w.save(target), attnres_test::contains("cannot create temporary file") &&
                                              attnres_test::contains("ermission denied"));
      CHECK(read_all(target) == old);
      CHECK(dir.entries() == std::vector<std::string>{"model.safetensors"});
    }
    fs::permissions(dir.path, fs::perms::owner_all);
  }
}
