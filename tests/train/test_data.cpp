// train/data: corpora (files, bytes, fortunes, synthetic text), the split, the batch sampler's
// determinism and resumability, evaluation windows, and the errors with their messages.

#include "test_util.hpp"
#include "temp_dir.hpp"

#include <attnres/train/data.hpp>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

using attnres::index_t;
using attnres::train::batch_sampler;
using attnres::train::byte_corpus;
using attnres::train::evaluation_windows;
using attnres::train::sampler_state;
using attnres_test::contains;
namespace fs = std::filesystem;

namespace {

std::string as_string(const byte_corpus& c) { return {c.bytes().begin(), c.bytes().end()}; }

// 0, 1, …, 250, 0, 1, …: every window of ≤ 251 bytes is identified by its first byte.
byte_corpus counting_corpus(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>(i % 251);
  return byte_corpus::from_bytes(std::move(s));
}

}  // namespace

TEST_CASE("byte_corpus: from_bytes, from_file and their errors", "[train][data]") {
  const auto c = byte_corpus::from_bytes("hello\nworld");
  CHECK(c.size() == 11);
  CHECK(as_string(c) == "hello\nworld");
  REQUIRE_THROWS_AS(byte_corpus::from_bytes(""), attnres::config_error);

  attnres_test::temp_dir dir;
  const std::string binary("\x00\xff\x10\n", 4);
  const auto f = byte_corpus::from_file(dir.write("data.bin", binary));
  CHECK(as_string(f) == binary);

  const auto missing = dir / "no_such_file.txt";
  REQUIRE_THROWS_AS(byte_corpus::from_file(missing), attnres::io_error);
  REQUIRE_THROWS_WITH(byte_corpus::from_file(missing), contains(missing.string()));
  REQUIRE_THROWS_WITH(byte_corpus::from_file(dir.write("empty.txt", "")), contains("empty.txt' is empty"));
  REQUIRE_THROWS_WITH(byte_corpus::from_file(dir.path()), contains("is a directory"));
}

TEST_CASE("byte_corpus: split keeps the last fraction for validation", "[train][data]") {
  const auto c = counting_corpus(1000);
  const auto [train, val] = c.split(0.1);
  CHECK(train.size() == 900);
  CHECK(val.size() == 100);
  CHECK(as_string(train) + as_string(val) == as_string(c));
  CHECK(val.bytes()[0] == 900 % 251);

  const auto [t2, v2] = byte_corpus::from_bytes("abcdefghij").split(0.25);  // floor(10·0.75) = 7
  CHECK(as_string(t2) == "abcdefg");
  CHECK(as_string(v2) == "hij");

  REQUIRE_THROWS_AS(c.split(0.0), attnres::config_error);
  REQUIRE_THROWS_AS(c.split(1.0), attnres::config_error);
  REQUIRE_THROWS_WITH(c.split(0.1, 129), contains("900 / 100") && contains("fewer than 129 bytes"));
  REQUIRE_THROWS_AS(byte_corpus::from_bytes("abc").split(0.1), attnres::config_error);  // 2 / 1
}

TEST_CASE("batch_sampler: windows of the corpus, targets shifted by one", "[train][data]") {
  const index_t B = 4, T = 16;
  const auto c = counting_corpus(300);
  batch_sampler s(c, B, T, 7);
  CHECK(s.batch() == B);
  CHECK(s.seq() == T);
  std::vector<std::int32_t> tokens, targets;
  std::set<std::int32_t> firsts;
  for (int k = 0; k < 50; ++k) {
    s.next(tokens, targets);
    REQUIRE(tokens.size() == static_cast<std::size_t>(B * T));
    REQUIRE(targets.size() == static_cast<std::size_t>(B * T));
    for (index_t b = 0; b < B; ++b) {
      const std::int32_t* tok = tokens.data() + b * T;
      const std::int32_t* tgt = targets.data() + b * T;
      for (index_t t = 0; t < T; ++t) {
        REQUIRE(tgt[t] == (tok[t] + 1) % 251);  // contiguous bytes of the corpus
        if (t + 1 < T) REQUIRE(tgt[t] == tok[t + 1]);
      }
      firsts.insert(tok[0]);
    }
  }
  CHECK(firsts.size() > 100);  // the starts spread over the corpus

  // Every start in [0, size − T − 1] is reachable, and no other: a corpus of T + 3 bytes has
  // exactly three windows.
  batch_sampler tiny(counting_corpus(T + 3), 8, T, 1);
  std::set<std::int32_t> starts;
  for (int k = 0; k < 20; ++k) {
    tiny.next(tokens, targets);
    for (index_t b = 0; b < 8; ++b) starts.insert(tokens[static_cast<std::size_t>(b * T)]);
  }
  CHECK(starts == std::set<std::int32_t>{0, 1, 2});
}

TEST_CASE("batch_sampler: same seed, same batches, and a restored state continues identically", "[train][data]") {
  const auto c = byte_corpus::synthetic(20000, 1);
  batch_sampler a(c, 3, 32, 42), b(c, 3, 32, 42), other(c, 3, 32, 43);
  std::vector<std::int32_t> ta, ya, tb, yb, to, yo;
  for (int k = 0; k < 5; ++k) {
    a.next(ta, ya);
    b.next(tb, yb);
    other.next(to, yo);
    CHECK(ta == tb);
    CHECK(ya == yb);
    CHECK(ta != to);
  }
  const sampler_state saved = a.state();
  CHECK(saved == sampler_state{42, 15});  // one draw per window

  std::vector<std::vector<std::int32_t>> expected_tokens, expected_targets;
  for (int k = 0; k < 4; ++k) {
    a.next(ta, ya);
    expected_tokens.push_back(ta);
    expected_targets.push_back(ya);
  }
  batch_sampler resumed(c, 3, 32, 999);  // the seed comes from the state
  resumed.set_state(saved);
  CHECK(resumed.state() == saved);
  for (int k = 0; k < 4; ++k) {
    resumed.next(tb, yb);
    CHECK(tb == expected_tokens[static_cast<std::size_t>(k)]);
    CHECK(yb == expected_targets[static_cast<std::size_t>(k)]);
  }
  CHECK(resumed.state() == a.state());
}

TEST_CASE("batch_sampler: errors for a corpus shorter than one window", "[train][data]") {
  const auto c = byte_corpus::from_bytes("0123456789");  // 10 bytes
  CHECK_NOTHROW(batch_sampler(c, 1, 9, 0));            // 9 + 1 bytes: exactly one window
  REQUIRE_THROWS_AS(batch_sampler(c, 1, 10, 0), attnres::config_error);
  REQUIRE_THROWS_WITH(batch_sampler(c, 1, 10, 0),
                      contains("corpus has 10 bytes, fewer than one window of sequence length 10 needs (11)"));
  REQUIRE_THROWS_WITH(batch_sampler(c, 0, 4, 0), contains("batch must be at least 1"));
  REQUIRE_THROWS_WITH(batch_sampler(c, 2, 0, 0), contains("sequence length must be at least 1"));
}

TEST_CASE("evaluation_windows: deterministic, targets tile the corpus", "[train][data]") {
  const auto c = byte_corpus::from_bytes("0123456789");
  const auto w = evaluation_windows(c, 3, 100);  // (10 − 1) / 3 = 3 windows
  REQUIRE(w.size() == 3);
  const auto str = [](const std::vector<std::int32_t>& v) { return std::string(v.begin(), v.end()); };
  CHECK(str(w[0].first) == "012");
  CHECK(str(w[0].second) == "123");
  CHECK(str(w[1].first) == "345");
  CHECK(str(w[1].second) == "456");
  CHECK(str(w[2].first) == "678");
  CHECK(str(w[2].second) == "789");
  CHECK(evaluation_windows(c, 3, 2).size() == 2);
  CHECK(evaluation_windows(c, 9, 5).size() == 1);
  REQUIRE_THROWS_WITH(evaluation_windows(c, 10, 5), contains("fewer than one window"));
  REQUIRE_THROWS_AS(evaluation_windows(c, 3, 0), attnres::config_error);
}

TEST_CASE("byte_corpus::synthetic: deterministic English-like text", "[train][data]") {
  const auto a = byte_corpus::synthetic(200000, 5);
  const auto b = byte_corpus::synthetic(200000, 5);
  const auto c = byte_corpus::synthetic(200000, 6);
  REQUIRE(a.size() == 200000);
  CHECK(as_string(a) == as_string(b));
  CHECK(as_string(a) != as_string(c));
  CHECK(as_string(byte_corpus::synthetic(1000, 5)) == as_string(a).substr(0, 1000));  // a prefix
  CHECK_THROWS_AS(byte_corpus::synthetic(0, 5), attnres::config_error);

  const std::string s = as_string(a);
  INFO(s.substr(0, 600));
  CHECK(std::all_of(s.begin(), s.end(), [](char ch) { return ch == '\n' || (ch >= 32 && ch <= 126); }));
  std::map<char, std::size_t> count;
  for (char ch : s) ++count[ch];
  CHECK(count[' '] > s.size() / 10);  // words are short
  CHECK(count['.'] > s.size() / 200);
  CHECK(count[','] > 0);
  CHECK(count['?'] > 0);
  CHECK(count['"'] > 0);
  CHECK(count['\n'] > s.size() / 100);
  CHECK(s.find("\n\n") != std::string::npos);  // paragraphs
  CHECK(s.find("  ") == std::string::npos);
  CHECK(std::isupper(static_cast<unsigned char>(s[0])));

  std::size_t longest_line = 0, column = 0, digits = 0;
  std::set<std::string> vocabulary;
  std::string word;
  for (char ch : s) {
    column = ch == '\n' ? 0 : column + 1;
    longest_line = std::max(longest_line, column);
    if (std::isdigit(static_cast<unsigned char>(ch))) ++digits;
    if (std::isalpha(static_cast<unsigned char>(ch))) {
      word += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    } else if (!word.empty()) {
      vocabulary.insert(word);
      word.clear();
    }
  }
  CHECK(longest_line <= 72);
  CHECK(digits > 0);
  INFO("distinct words: " << vocabulary.size());
  CHECK(vocabulary.size() > 250);  // about 300 lemmas, plus plurals and past tenses
  CHECK(vocabulary.size() < 600);
  CHECK(vocabulary.count("the") == 1);
}

TEST_CASE("byte_corpus::from_fortunes: reads a fortune directory", "[train][data]") {
  attnres_test::temp_dir dir;
  dir.write("alpha", "Fortune one.\n%\nFortune two,\nline two.\n%\n");
  dir.write("beta", "A %-sign inside a line stays.\n%\n%%\nLast.");
  dir.write("alpha.dat", std::string("\x00\x00\x00\x02\x00\x00\x00\x02", 8));
  fs::create_symlink("beta", dir / "beta.u8");
  fs::create_symlink("alpha.dat", dir / "index");   // a symlink to an index file
  fs::create_symlink("alpha", dir / "zeta");        // the same file twice: read once
  fs::create_directory(dir / "off");                // subdirectories are not read
  dir.write("off/rude", "Not included.\n");

  const auto c = byte_corpus::from_fortunes(dir.path());
  CHECK(as_string(c) == "Fortune one.\nFortune two,\nline two.\nA %-sign inside a line stays.\n%%\nLast.\n");

  attnres_test::temp_dir empty;
  empty.write("only.dat", "xyz");
  REQUIRE_THROWS_AS(byte_corpus::from_fortunes(empty.path()), attnres::io_error);
  REQUIRE_THROWS_WITH(byte_corpus::from_fortunes(empty.path()),
                      contains(empty.path().string()) && contains("no usable text"));
  empty.write("separators", "%\n%\n");
  REQUIRE_THROWS_WITH(byte_corpus::from_fortunes(empty.path()), contains("no usable text"));
  REQUIRE_THROWS_WITH(byte_corpus::from_fortunes(dir / "alpha"), contains("is not a directory"));
  REQUIRE_THROWS_WITH(byte_corpus::from_fortunes(dir / "missing"), contains("is not a directory"));
}
