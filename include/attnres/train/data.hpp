#pragma once
// train/data — byte-level training data: a corpus of bytes (V = 256, token = byte value), a random
// batch sampler that checkpoints can resume exactly, and deterministic evaluation windows.
//
//   byte_corpus            immutable bytes, shared between copies (copies and split() halves are
//                          cheap views of one buffer). Never empty.
//     from_file(path)      the file's bytes; io_error naming the file if unreadable or empty.
//     from_bytes(s)        the string's bytes; config_error if empty.
//     from_fortunes(dir)   the text of a fortune(6) database directory (see below).
//     synthetic(n, seed)   n bytes of generated English-like text (see synthetic_text below).
//     split(f, min_side)   (train, validation): train is the first floor(size·(1 − f)) bytes
//                          (as nanoGPT's data[:int(n*0.9)]) and validation the rest.
//                          config_error unless 0 < f < 1 and both sides hold ≥ min_side bytes; pass
//                          min_side = T + 1 to guarantee each side one window of sequence length T.
//
//   batch_sampler(corpus, B, T, seed)
//     next(tokens, targets) fills tokens (B·T) with B windows of T bytes, each starting uniformly
//                          in [0, size − T − 1], and targets (B·T) with the same windows shifted
//                          by one byte: targets[b·T + t] = tokens[b·T + t + 1] within a window.
//     state() / set_state() the seed and the number of random draws so far; restoring it makes
//                          the following batches bit-identical to those of the saved run. Each
//                          window costs exactly one 64-bit draw, so set_state re-seeds and skips
//                          `draws` outputs (O(draws), ~1 ns each).
//     config_error if B < 1, T < 1, or the corpus is shorter than T + 1 bytes.
//
//   evaluation_windows(corpus, T, max_windows)
//     up to max_windows (tokens, targets) pairs of T bytes; window k reads bytes
//     [k·T, k·T + T] so the targets of consecutive windows tile bytes 1 … n·T of the corpus without
//     overlap or gaps: every predicted byte is counted once, as bits-per-byte needs.
//
// Shapes: tokens and targets are row-major (B,T) int32 arrays holding byte values 0–255.

#include <attnres/core/error.hpp>
#include <attnres/core/random.hpp>
#include <attnres/core/tensor.hpp>
#include <attnres/io/read_file.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace attnres::train {

// ------------------------------------------------------------------------------------------------
// synthetic_text(n, seed): n bytes of SYNTHETIC English-like text, for runs without a data file.
//
// It is not real language: sentences are drawn from a small grammar over an embedded vocabulary of
// about 300 common English words (determiners, ~50 adjectives, ~75 nouns with regular plurals, ~70
// verbs in base and past forms, adverbs, prepositions, conjunctions, names, days and months).
// What a model can learn from it:
//   * spelling of a fixed vocabulary and spaces between words;
//   * local grammar: "det [adj] noun", a/an agreement, subject–verb–object, plural after numbers,
//     "did <subject> <base verb>" questions, prepositional phrases, compound sentences;
//   * capitalised sentence starts, and the punctuation . , ? ! and double quotes (dialogue);
//   * numbers: years, times of day and counts ("In 1987, …", "at 7 o'clock", "14 boxes");
//   * layout: lines wrapped at 72 columns, paragraphs of 2–7 sentences separated by a blank line.
// Output bytes are printable ASCII (32–126) and '\n' only. Deterministic: the same (n, seed) gives
// the same bytes on every platform (attnres::rng is portable; no std:: distributions are used).
// ------------------------------------------------------------------------------------------------
namespace synthetic_detail {

using words = std::span<const std::string_view>;

inline constexpr std::string_view determiners[] = {"the", "the", "the", "a",    "a",   "this", "that",
                                                   "every", "one", "my", "your", "his", "her",  "our",
                                                   "their", "no"};
inline constexpr std::string_view plural_determiners[] = {"the", "the", "some", "many", "few", "these",
                                                          "those", "all the", "two", "three", "five",
                                                          "ten", "twelve", "twenty"};
inline constexpr std::string_view adjectives[] = {
    "old",    "young",   "small",  "large",  "little", "big",    "quiet",  "loud",   "bright", "dark",
    "warm",   "cold",    "green",  "red",    "blue",   "white",  "black",  "yellow", "happy",  "sad",
    "tired",  "busy",    "careful", "strange", "simple", "heavy", "light",  "empty",  "full",   "early",
    "quick",  "slow",    "gentle", "brave",  "clever", "honest", "kind",   "proud",  "rich",   "poor",
    "wild",   "deep",    "narrow", "wide",   "long",   "short",  "soft",   "sweet",  "fresh",  "open"};
inline constexpr std::string_view nouns[] = {
    "dog",      "cat",     "bird",    "horse",   "cow",      "farmer",  "teacher", "doctor",
    "student",  "friend",  "king",    "queen",   "baker",    "sailor",  "driver",  "writer",
    "painter",  "neighbour", "stranger", "girl",  "boy",      "river",   "house",   "garden",
    "road",     "tree",    "forest",  "mountain", "village", "city",    "window",  "door",
    "table",    "chair",   "book",    "letter",  "story",    "song",    "picture", "box",
    "key",      "lamp",    "clock",   "bottle",  "basket",   "apple",   "stone",   "flower",
    "field",    "hill",    "lake",    "boat",    "bridge",   "train",   "ship",    "market",
    "school",   "church",  "kitchen", "room",    "wall",     "cup",     "ring",    "coat",
    "hat",      "bag",     "candle",  "map",     "coin",     "star",    "island",  "shop",
    "machine",  "game",    "plan",    "question", "secret",  "dream",   "word",    "library"};
inline constexpr std::string_view names[] = {"Anna",  "Tom",   "Maria", "John",   "Lucy",  "Peter",  "Sarah",
                                             "David", "Emma",  "James", "Alice",  "Henry", "Clara",  "Oliver",
                                             "Rose",  "Samuel", "Nora", "Arthur", "Helen", "Victor"};
inline constexpr std::string_view subject_pronouns[] = {"I", "you", "he", "she", "we", "they"};
inline constexpr std::string_view object_pronouns[] = {"me", "you", "him", "her", "us", "them", "it"};

struct verb {
  std::string_view base, past;
};
inline constexpr verb transitive[] = {
    {"see", "saw"},         {"find", "found"},     {"take", "took"},       {"bring", "brought"},
    {"make", "made"},       {"build", "built"},    {"carry", "carried"},   {"open", "opened"},
    {"close", "closed"},    {"watch", "watched"},  {"follow", "followed"}, {"help", "helped"},
    {"call", "called"},     {"paint", "painted"},  {"clean", "cleaned"},   {"read", "read"},
    {"write", "wrote"},     {"sell", "sold"},      {"buy", "bought"},      {"visit", "visited"},
    {"leave", "left"},      {"hold", "held"},      {"lose", "lost"},       {"keep", "kept"},
    {"need", "needed"},     {"want", "wanted"},    {"love", "loved"},      {"like", "liked"},
    {"remember", "remembered"}, {"forget", "forgot"}, {"answer", "answered"}, {"ask", "asked"},
    {"push", "pushed"},     {"pull", "pulled"},    {"move", "moved"},      {"cover", "covered"},
    {"fix", "fixed"},       {"break", "broke"},    {"catch", "caught"},    {"throw", "threw"},
    {"hide", "hid"},        {"show", "showed"},    {"teach", "taught"},    {"meet", "met"},
    {"know", "knew"},       {"wash", "washed"},    {"cook", "cooked"},     {"draw", "drew"},
    {"send", "sent"},       {"count", "counted"}};
inline constexpr verb intransitive[] = {
    {"walk", "walked"},   {"run", "ran"},         {"sleep", "slept"},     {"laugh", "laughed"},
    {"smile", "smiled"},  {"wait", "waited"},     {"sing", "sang"},       {"dance", "danced"},
    {"swim", "swam"},     {"arrive", "arrived"},  {"rest", "rested"},     {"work", "worked"},
    {"listen", "listened"}, {"travel", "travelled"}, {"return", "returned"}, {"fall", "fell"},
    {"sit", "sat"},       {"stand", "stood"},     {"speak", "spoke"},     {"think", "thought"}};
inline constexpr std::string_view adverbs[] = {"quickly", "slowly",   "quietly", "carefully", "suddenly",
                                               "finally", "often",    "never",   "always",    "again",
                                               "soon",    "gently",   "happily", "sadly",     "together",
                                               "alone",   "today",    "yesterday", "later",   "early"};
inline constexpr std::string_view prepositions[] = {"in",     "on",      "near",    "under",  "behind",
                                                    "beside", "across",  "along",   "through", "over",
                                                    "into",   "from",    "with",    "without", "around",
                                                    "beyond"};
inline constexpr std::string_view conjunctions[] = {"and",    "but",   "so",    "because", "while",
                                                    "when",   "although", "before", "after", "until"};
inline constexpr std::string_view days[] = {"Monday", "Tuesday", "Wednesday", "Thursday",
                                            "Friday", "Saturday", "Sunday"};
inline constexpr std::string_view months[] = {"January", "February", "March",     "April",   "May",      "June",
                                              "July",    "August",   "September", "October", "November", "December"};
inline constexpr std::string_view question_words[] = {"Why", "Where", "When", "How"};
inline constexpr std::string_view speech_verbs[] = {"said", "asked", "replied", "whispered", "shouted"};
inline constexpr std::string_view time_phrases[] = {"Yesterday", "Later that night", "In the morning",
                                                    "After the storm", "At noon", "Once upon a time",
                                                    "The next day", "That evening"};

inline bool is_vowel(char c) { return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u'; }

// Regular English plural: box → boxes, city → cities, key → keys, dog → dogs.
inline std::string plural(std::string_view noun) {
  std::string s(noun);
  const auto ends = [&](std::string_view e) { return s.size() >= e.size() && s.ends_with(e); };
  if (ends("s") || ends("x") || ends("ch") || ends("sh")) return s + "es";
  if (s.size() >= 2 && s.back() == 'y' && !is_vowel(s[s.size() - 2])) return s.substr(0, s.size() - 1) + "ies";
  return s + "s";
}

class generator {
 public:
  explicit generator(std::uint64_t seed) : gen_(seed) {}

  // Appends one paragraph (2–7 sentences, wrapped at 72 columns, no trailing newline) to out.
  void paragraph(std::string& out) {
    const int sentences = 2 + static_cast<int>(gen_.below(6));
    std::string text;
    for (int i = 0; i < sentences; ++i) {
      if (i) text += ' ';
      text += sentence();
    }
    wrap(text, out, 72);
  }

 private:
  std::string_view pick(words w) { return w[static_cast<std::size_t>(gen_.below(w.size()))]; }
  bool chance(double p) { return gen_.uniform() < p; }
  const verb& pick_verb(std::span<const verb> v) { return v[static_cast<std::size_t>(gen_.below(v.size()))]; }

  // A noun phrase: "the old dog", "an empty box", "twelve apples", "Anna", "she" / "her".
  std::string noun_phrase(bool subject) {
    const double r = gen_.uniform();
    if (r < 0.12) return std::string(pick(names));
    if (r < 0.30) return std::string(pick(subject ? words(subject_pronouns) : words(object_pronouns)));
    std::string adjs;
    if (chance(0.5)) adjs = std::string(pick(adjectives)) + " ";
    if (chance(0.12)) adjs += std::string(pick(adjectives)) + " ";
    if (chance(0.2)) {  // plural
      std::string det = chance(0.2) ? std::to_string(2 + gen_.below(98)) : std::string(pick(plural_determiners));
      return det + " " + adjs + plural(pick(nouns));
    }
    std::string rest = adjs + std::string(pick(nouns));
    std::string det(pick(determiners));
    if (det == "a" && is_vowel(rest[0])) det = "an";
    return det + " " + rest;
  }

  std::string prepositional_phrase() { return std::string(pick(prepositions)) + " " + noun_phrase(false); }

  // "the farmer quietly opened a red door near the river"
  std::string clause() {
    std::string s = noun_phrase(true) + " ";
    if (chance(0.1)) s += std::string(pick(adverbs)) + " ";
    if (chance(0.65)) {
      s += std::string(pick_verb(transitive).past) + " " + noun_phrase(false);
      if (chance(0.35)) s += " " + prepositional_phrase();
    } else {
      s += std::string(pick_verb(intransitive).past);
      if (chance(0.4)) s += " " + std::string(pick(adverbs));
      if (chance(0.5)) s += " " + prepositional_phrase();
    }
    return s;
  }

  std::string opener() {
    switch (gen_.below(5)) {
      case 0: return "In " + std::to_string(1800 + gen_.below(225));
      case 1: return "On " + std::string(pick(days));
      case 2: return "In " + std::string(pick(months));
      case 3: return "At " + std::to_string(1 + gen_.below(12)) + " o'clock";
      default: return std::string(pick(time_phrases));
    }
  }

  static std::string capitalised(std::string s) {
    for (char& c : s)
      if (c != '"') {
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
        break;
      }
    return s;
  }

  std::string sentence() {
    const double r = gen_.uniform();
    if (r < 0.45) return capitalised(clause() + ".");
    if (r < 0.62) return capitalised(clause() + ", " + std::string(pick(conjunctions)) + " " + clause() + ".");
    if (r < 0.74) return opener() + ", " + clause() + ".";
    if (r < 0.82) {
      const std::string subject = noun_phrase(true);
      const std::string object = noun_phrase(false);
      if (chance(0.5))
        return std::string(pick(question_words)) + " did " + subject + " " +
               std::string(pick_verb(transitive).base) + " " + object + "?";
      return capitalised("did " + subject + " " + std::string(pick_verb(transitive).base) + " " + object + "?");
    }
    if (r < 0.90) {
      const std::string speaker = chance(0.5) ? std::string(pick(names)) : "the " + std::string(pick(nouns));
      return "\"" + capitalised(clause()) + ",\" " + std::string(pick(speech_verbs)) + " " + speaker + ".";
    }
    if (r < 0.95) return capitalised(clause() + "!");
    const std::string count = std::to_string(2 + gen_.below(98));
    return "There were " + count + " " + plural(pick(nouns)) + " " + prepositional_phrase() + ".";
  }

  // Greedy line wrap: words separated by single spaces, lines at most `width` columns (longer
  // words get a line of their own).
  static void wrap(std::string_view text, std::string& out, std::size_t width) {
    std::size_t column = 0;
    while (!text.empty()) {
      const std::size_t end = std::min(text.find(' '), text.size());
      const std::string_view word = text.substr(0, end);
      text.remove_prefix(std::min(end + 1, text.size()));
      if (column > 0 && column + 1 + word.size() > width) {
        out += '\n';
        column = 0;
      } else if (column > 0) {
        out += ' ';
        ++column;
      }
      out += word;
      column += word.size();
    }
  }

  rng gen_;
};

}  // namespace synthetic_detail

inline std::string synthetic_text(std::size_t n_bytes, std::uint64_t seed) {
  synthetic_detail::generator g(seed);
  std::string out;
  out.reserve(n_bytes + 1024);
  while (out.size() < n_bytes) {
    if (!out.empty()) out += "\n\n";
    g.paragraph(out);
  }
  out.resize(n_bytes);
  return out;
}

// ------------------------------------------------------------------------------------------------

class byte_corpus {
 public:
  // The bytes of a file. io_error naming the file if it cannot be read or is empty.
  static byte_corpus from_file(const std::filesystem::path& path) {
    const std::string name = path.string();
    std::error_code ec;
    expects<io_error>(!std::filesystem::is_directory(path, ec), "byte_corpus: '", name,
                      "' is a directory, not a file");
    std::ifstream in(path, std::ios::binary);
    expects<io_error>(in.is_open(), "byte_corpus: cannot open '", name, "' for reading");
    std::vector<std::uint8_t> bytes = io::read_stream<std::uint8_t>(in, "byte_corpus: '" + name + "'");
    expects<io_error>(!bytes.empty(), "byte_corpus: '", name, "' is empty");
    return byte_corpus(std::move(bytes));
  }

  static byte_corpus from_bytes(std::string s) {
    expects<config_error>(!s.empty(), "byte_corpus::from_bytes: empty corpus");
    return byte_corpus(std::vector<std::uint8_t>(s.begin(), s.end()));
  }

  // The text of a fortune(6) database directory such as /usr/share/games/fortunes: every regular
  // file directly in dir (in name order), except the *.dat index files, the *.u8 files and
  // symlinks to them; lines consisting of a single '%' (the separators between fortunes) are
  // dropped and the remaining lines are joined with '\n'. A file reached twice (through a
  // symlink) is read once. io_error if dir is not a readable directory, if a file cannot be
  // read, or if no text remains.
  static byte_corpus from_fortunes(const std::filesystem::path& dir) {
    namespace fs = std::filesystem;
    const std::string dname = dir.string();
    std::error_code ec;
    expects<io_error>(fs::is_directory(dir, ec), "byte_corpus::from_fortunes: '", dname,
                      "' is not a directory");
    std::vector<fs::path> files;
    fs::directory_iterator it(dir, ec);
    expects<io_error>(!ec, "byte_corpus::from_fortunes: cannot list '", dname, "': ", ec.message());
    for (; it != fs::directory_iterator(); it.increment(ec)) {
      expects<io_error>(!ec, "byte_corpus::from_fortunes: cannot list '", dname, "': ", ec.message());
      files.push_back(it->path());
    }
    std::sort(files.begin(), files.end());  // directory order is unspecified; name order is not

    const auto skipped_name = [](const fs::path& p) {
      const std::string e = p.extension().string();
      return e == ".dat" || e == ".u8";
    };
    std::vector<std::uint8_t> text;
    std::set<fs::path> seen;
    for (const fs::path& p : files) {
      if (skipped_name(p)) continue;
      if (fs::is_symlink(p, ec)) {
        const fs::path target = fs::read_symlink(p, ec);
        if (ec || skipped_name(target)) continue;
      }
      if (!fs::is_regular_file(p, ec)) continue;  // directories, broken links, devices
      const fs::path canonical = fs::canonical(p, ec);
      if (ec || skipped_name(canonical) || !seen.insert(canonical).second) continue;

      std::ifstream in(p, std::ios::binary);
      expects<io_error>(in.is_open(), "byte_corpus::from_fortunes: cannot open '", p.string(),
                        "' for reading");
      const std::vector<std::uint8_t> bytes = io::read_stream<std::uint8_t>(in, "byte_corpus: '" + p.string() + "'");
      std::size_t begin = 0;
      while (begin < bytes.size()) {
        std::size_t end = begin;
        while (end < bytes.size() && bytes[end] != '\n') ++end;
        std::size_t stop = end;  // the line without its '\r' (if any)
        if (stop > begin && bytes[stop - 1] == '\r') --stop;
        const bool separator = stop - begin == 1 && bytes[begin] == '%';
        if (!separator) {
          text.insert(text.end(), bytes.begin() + static_cast<std::ptrdiff_t>(begin),
                      bytes.begin() + static_cast<std::ptrdiff_t>(end));
          text.push_back('\n');
        }
        begin = end + 1;
      }
    }
    const bool has_text = std::any_of(text.begin(), text.end(), [](std::uint8_t c) {
      return c != '\n' && c != '\r' && c != ' ' && c != '\t';
    });
    expects<io_error>(has_text, "byte_corpus::from_fortunes: '", dname,
                      "' has no usable text (no readable fortune files besides *.dat / *.u8)");
    return byte_corpus(std::move(text));
  }

  // n_bytes of built-in synthetic English-like text (see synthetic_text above for its structure).
  static byte_corpus synthetic(std::size_t n_bytes, std::uint64_t seed) {
    expects<config_error>(n_bytes > 0, "byte_corpus::synthetic: n_bytes must be positive");
    const std::string s = synthetic_text(n_bytes, seed);
    return byte_corpus(std::vector<std::uint8_t>(s.begin(), s.end()));
  }

  std::size_t size() const { return size_; }
  std::span<const std::uint8_t> bytes() const { return {data_->data() + begin_, size_}; }

  // (train, validation) with validation the last share of the bytes; see the header comment.
  std::pair<byte_corpus, byte_corpus> split(double validation_fraction, std::size_t min_side_bytes = 2) const {
    expects<config_error>(validation_fraction > 0.0 && validation_fraction < 1.0,
                          "byte_corpus::split: validation_fraction must be in (0, 1), got ",
                          validation_fraction);
    const auto n_train = static_cast<std::size_t>(static_cast<double>(size_) * (1.0 - validation_fraction));
    const std::size_t n_val = size_ - n_train;
    expects<config_error>(n_train >= min_side_bytes && n_val >= min_side_bytes, "byte_corpus::split: ",
                          size_, " bytes split ", n_train, " / ", n_val,
                          " (validation_fraction ", validation_fraction, ") leave a side with fewer than ",
                          min_side_bytes, " bytes (one window)");
    return {byte_corpus(data_, begin_, n_train), byte_corpus(data_, begin_ + n_train, n_val)};
  }

 private:
  explicit byte_corpus(std::vector<std::uint8_t> bytes)
      : data_(std::make_shared<const std::vector<std::uint8_t>>(std::move(bytes))), size_(data_->size()) {}
  byte_corpus(std::shared_ptr<const std::vector<std::uint8_t>> data, std::size_t begin, std::size_t size)
      : data_(std::move(data)), begin_(begin), size_(size) {}

  std::shared_ptr<const std::vector<std::uint8_t>> data_;
  std::size_t begin_ = 0;
  std::size_t size_ = 0;
};

// ------------------------------------------------------------------------------------------------

// What a checkpoint stores to resume a batch_sampler: its seed and how many 64-bit draws it made.
struct sampler_state {
  std::uint64_t seed = 0;
  std::uint64_t draws = 0;
  bool operator==(const sampler_state&) const = default;
};

class batch_sampler {
 public:
  batch_sampler(const byte_corpus& corpus, index_t batch, index_t seq, std::uint64_t seed)
      : corpus_(corpus), batch_(batch), seq_(seq), gen_(seed), state_{seed, 0} {
    expects<config_error>(batch >= 1, "batch_sampler: batch must be at least 1, got ", batch);
    expects<config_error>(seq >= 1, "batch_sampler: sequence length must be at least 1, got ", seq);
    expects<config_error>(corpus.size() >= static_cast<std::size_t>(seq) + 1, "batch_sampler: the corpus has ",
                          corpus.size(), " bytes, fewer than one window of sequence length ", seq,
                          " needs (", seq + 1, ")");
  }

  index_t batch() const { return batch_; }
  index_t seq() const { return seq_; }

  // tokens, targets: resized to (B,T) and overwritten.
  void next(std::vector<std::int32_t>& tokens, std::vector<std::int32_t>& targets) {
    const auto n = static_cast<std::size_t>(batch_ * seq_);
    tokens.resize(n);
    targets.resize(n);
    const std::span<const std::uint8_t> bytes = corpus_.bytes();
    const std::uint64_t starts = bytes.size() - static_cast<std::size_t>(seq_);  // [0, size − T − 1]
    for (index_t b = 0; b < batch_; ++b) {
      const std::size_t start = below(starts);
      const std::uint8_t* w = bytes.data() + start;  // (T + 1) bytes
      std::int32_t* tok = tokens.data() + b * seq_;  // (T)
      std::int32_t* tgt = targets.data() + b * seq_;  // (T)
      for (index_t t = 0; t < seq_; ++t) {
        tok[t] = w[t];
        tgt[t] = w[t + 1];
      }
    }
  }

  sampler_state state() const { return state_; }

  // Continues exactly where the sampler that produced s was (given the same corpus and B, T).
  void set_state(const sampler_state& s) {
    gen_.reseed(s.seed);
    for (std::uint64_t i = 0; i < s.draws; ++i) (void)gen_.next_u64();
    state_ = s;
  }

 private:
  // Uniform in [0, n) from exactly one draw (Lemire's multiply-shift), so draws are countable.
  std::size_t below(std::uint64_t n) {
    __extension__ using u128 = unsigned __int128;
    ++state_.draws;
    return static_cast<std::size_t>((static_cast<u128>(gen_.next_u64()) * n) >> 64);
  }

  byte_corpus corpus_;  // shares the bytes, so the sampler outlives the caller's corpus safely
  index_t batch_;
  index_t seq_;
  rng gen_;
  sampler_state state_;
};

// Deterministic evaluation windows: (tokens, targets) pairs of T bytes each, window k covering
// bytes [k·T, k·T + T]; at most max_windows of them, and as many as fit. config_error if T < 1,
// max_windows < 1 or the corpus is shorter than T + 1 bytes.
inline std::vector<std::pair<std::vector<std::int32_t>, std::vector<std::int32_t>>> evaluation_windows(
    const byte_corpus& corpus, index_t seq, index_t max_windows) {
  expects<config_error>(seq >= 1, "evaluation_windows: sequence length must be at least 1, got ", seq);
  expects<config_error>(max_windows >= 1, "evaluation_windows: max_windows must be at least 1, got ",
                        max_windows);
  expects<config_error>(corpus.size() >= static_cast<std::size_t>(seq) + 1, "evaluation_windows: the corpus has ",
                        corpus.size(), " bytes, fewer than one window of sequence length ", seq, " needs (",
                        seq + 1, ")");
  const std::span<const std::uint8_t> bytes = corpus.bytes();
  const auto fit = static_cast<index_t>((bytes.size() - 1) / static_cast<std::size_t>(seq));
  const index_t n = std::min(fit, max_windows);
  std::vector<std::pair<std::vector<std::int32_t>, std::vector<std::int32_t>>> out(static_cast<std::size_t>(n));
  for (index_t k = 0; k < n; ++k) {
    const std::uint8_t* w = bytes.data() + k * seq;  // (T + 1) bytes
    auto& [tokens, targets] = out[static_cast<std::size_t>(k)];
    tokens.assign(w, w + seq);
    targets.assign(w + 1, w + seq + 1);
  }
  return out;
}

}  // namespace attnres::train
