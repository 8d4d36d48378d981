#pragma once
// train/metrics_log — what a training run prints and records.
//
//   metrics_log(path, columns, mode)
//       a CSV file: one header line of column names, then one line per row(). Each row is
//       formatted completely, written and flushed in one go, so a crash loses at most the row
//       being written. Values use the shortest decimal that reads back as the same double
//       ("0.1", "1234", "nan", "inf").
//       mode::truncate (default) starts a new file. mode::append continues an existing file whose
//       header must equal the columns (io_error otherwise) and first drops a partial last line a
//       crash may have left; a missing or empty file is started fresh.
//       config_error for no columns, an empty or duplicate name, or a name containing ',', '"',
//       '\r' or '\n'. row() throws usage_error when the value count differs from the column
//       count, io_error when the write fails.
//
//   progress(total_steps, every, style, out)
//       a printer for a training loop; it computes nothing but the layout. update(step, loss,
//       tokens_per_second, eta_seconds) takes `step` = completed steps (1 … total):
//         style::bar    redraws one line in place with '\r':
//                       "[#########---------------]   120/1000  loss 2.3456  12.3k tok/s  ETA 1:23"
//         style::lines  prints a plain line when step % every == 0 and at the last step:
//                       "step 120/1000  loss 2.3456  12.3k tok/s  ETA 1:23"
//         style::automatic  bar when `out` is std::cout / std::cerr and that stream is a terminal
//                       (isatty), lines otherwise (logs, pipes, CI).
//       note(text) prints a line of its own (e.g. validation results) without breaking the bar;
//       finish() ends a bar line (the destructor calls it). eta(step, total, elapsed) is the usual
//       linear estimate, offered as a helper.

#include <attnres/core/error.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <unistd.h>

namespace attnres::train {

class metrics_log {
 public:
  enum class mode { truncate, append };

  metrics_log(std::filesystem::path path, std::vector<std::string> columns, mode m = mode::truncate)
      : path_(std::move(path)), columns_(std::move(columns)) {
    expects<config_error>(!columns_.empty(), "metrics_log: no columns");
    std::set<std::string_view> seen;
    for (const std::string& c : columns_) {
      expects<config_error>(!c.empty(), "metrics_log: empty column name");
      expects<config_error>(c.find_first_of(",\"\r\n") == std::string::npos, "metrics_log: column name '",
                            c, "' contains a comma, quote or line break");
      expects<config_error>(seen.insert(c).second, "metrics_log: column '", c, "' appears twice");
    }
    std::string header;
    for (std::size_t i = 0; i < columns_.size(); ++i) header += (i ? "," : "") + columns_[i];

    const std::string name = path_.string();
    bool write_header = true;
    if (m == mode::append) write_header = !continue_existing(header);
    out_.open(path_, std::ios::binary | (write_header ? std::ios::trunc : std::ios::app));
    expects<io_error>(out_.is_open(), "metrics_log: cannot open '", name, "' for writing");
    if (write_header) write_line(header);
  }

  const std::filesystem::path& path() const { return path_; }
  const std::vector<std::string>& columns() const { return columns_; }

  // Appends one row (one value per column) and flushes it.
  void row(const std::vector<double>& values) {
    expects<usage_error>(values.size() == columns_.size(), "metrics_log '", path_.string(), "': row has ",
                         values.size(), " values but there are ", columns_.size(), " columns");
    std::string line;
    char buf[32];
    for (std::size_t i = 0; i < values.size(); ++i) {
      if (i) line += ',';
      const auto r = std::to_chars(buf, buf + sizeof buf, values[i]);
      line.append(buf, r.ptr);
    }
    write_line(line);
  }

 private:
  void write_line(std::string line) {
    line += '\n';
    out_.write(line.data(), static_cast<std::streamsize>(line.size()));
    out_.flush();
    expects<io_error>(out_.good(), "metrics_log: cannot write to '", path_.string(), "'");
  }

  // For mode::append: true if the file exists with this header (after dropping a partial last
  // line), false if it is missing or empty (start fresh); io_error for a different header.
  bool continue_existing(const std::string& header) {
    const std::string name = path_.string();
    std::error_code ec;
    if (!std::filesystem::exists(path_, ec) || std::filesystem::file_size(path_, ec) == 0) return false;
    std::string content;
    {
      std::ifstream in(path_, std::ios::binary);
      expects<io_error>(in.is_open(), "metrics_log: cannot open '", name, "' for reading");
      content.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      expects<io_error>(!in.bad(), "metrics_log: read error in '", name, "'");
    }
    const std::size_t header_end = content.find('\n');
    const std::string existing = content.substr(0, header_end);
    expects<io_error>(existing == header, "metrics_log: '", name, "' has columns '", existing,
                      "' but '", header, "' were given");
    const std::size_t keep = content.rfind('\n') + 1;  // 0 when not even the header is complete
    if (keep != content.size()) {
      std::filesystem::resize_file(path_, keep, ec);
      expects<io_error>(!ec, "metrics_log: cannot drop the partial last line of '", name, "': ",
                        ec.message());
    }
    return keep != 0;
  }

  std::filesystem::path path_;
  std::vector<std::string> columns_;
  std::ofstream out_;
};

// ------------------------------------------------------------------------------------------------

class progress {
 public:
  enum class style { automatic, bar, lines };

  explicit progress(std::int64_t total_steps, std::int64_t every = 10, style s = style::automatic,
                    std::ostream& out = std::cout)
      : total_(total_steps), every_(every), out_(out) {
    expects<config_error>(total_steps >= 1, "progress: total_steps must be at least 1, got ", total_steps);
    expects<config_error>(every >= 1, "progress: every must be at least 1, got ", every);
    bar_ = s == style::bar || (s == style::automatic && is_terminal(out));
  }
  progress(const progress&) = delete;
  progress& operator=(const progress&) = delete;
  ~progress() { finish(); }

  bool is_bar() const { return bar_; }

  // step = completed steps (1 … total); a negative or non-finite eta prints as "--:--".
  void update(std::int64_t step, double loss, double tokens_per_second, double eta_seconds) {
    const std::string stats = "loss " + fixed(loss, 4) + "  " + rate(tokens_per_second) + " tok/s  ETA " +
                              duration(eta_seconds);
    if (bar_) {
      constexpr int width = 24;
      const double frac = std::clamp(static_cast<double>(step) / static_cast<double>(total_), 0.0, 1.0);
      const auto filled = static_cast<int>(frac * width);
      std::string line = "[" + std::string(static_cast<std::size_t>(filled), '#') +
                         std::string(static_cast<std::size_t>(width - filled), '-') + "] ";
      const std::string counter = std::to_string(step) + "/" + std::to_string(total_);
      const std::size_t counter_width = 2 * std::to_string(total_).size() + 1;
      line += std::string(counter_width > counter.size() ? counter_width - counter.size() : 0, ' ') + counter;
      line += "  " + stats;
      const std::size_t length = line.size();
      if (length < drawn_) line.append(drawn_ - length, ' ');  // erase the rest of a longer line
      out_ << '\r' << line << std::flush;
      drawn_ = length;
    } else if (step % every_ == 0 || step == total_) {
      out_ << "step " << step << "/" << total_ << "  " << stats << '\n' << std::flush;
    }
  }

  // A line of its own (validation loss, a checkpoint saved …) that does not break the bar.
  void note(std::string_view text) {
    if (bar_ && drawn_ > 0) {
      out_ << '\r' << std::string(drawn_, ' ') << '\r';
      drawn_ = 0;
    }
    out_ << text << '\n' << std::flush;
  }

  // Ends the bar's line so later output starts on a fresh one. Idempotent.
  void finish() {
    if (bar_ && drawn_ > 0) {
      out_ << '\n' << std::flush;
      drawn_ = 0;
    }
  }

  // Linear estimate of the remaining seconds: elapsed / step · (total − step); NaN before step 1.
  static double eta(std::int64_t step, std::int64_t total, double elapsed_seconds) {
    if (step <= 0) return std::nan("");
    return elapsed_seconds / static_cast<double>(step) * static_cast<double>(std::max<std::int64_t>(total - step, 0));
  }

  // Clock format: "0:07", "12:34", "1:02:03"; "--:--" when unknown.
  static std::string duration(double seconds) {
    if (!std::isfinite(seconds) || seconds < 0 || seconds > 1e9) return "--:--";
    const auto s = static_cast<std::int64_t>(std::llround(seconds));
    char buf[48];
    if (s >= 3600)
      std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                    static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
    else
      std::snprintf(buf, sizeof buf, "%lld:%02lld", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
    return buf;
  }

  // Tokens per second with a k/M suffix: "950", "12.3k", "4.56M".
  static std::string rate(double per_second) {
    if (!std::isfinite(per_second) || per_second < 0) return "?";
    char buf[32];
    if (per_second >= 1e6)
      std::snprintf(buf, sizeof buf, "%.2fM", per_second / 1e6);
    else if (per_second >= 1e3)
      std::snprintf(buf, sizeof buf, "%.1fk", per_second / 1e3);
    else
      std::snprintf(buf, sizeof buf, "%.0f", per_second);
    return buf;
  }

 private:
  static std::string fixed(double x, int digits) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", digits, x);
    return buf;
  }

  static bool is_terminal(const std::ostream& out) {
    if (&out == &std::cout) return ::isatty(STDOUT_FILENO) != 0;
    if (&out == &std::cerr || &out == &std::clog) return ::isatty(STDERR_FILENO) != 0;
    return false;
  }

  std::int64_t total_;
  std::int64_t every_;
  std::ostream& out_;
  bool bar_ = false;
  std::size_t drawn_ = 0;  // length of the bar line on screen (0: none)
};

}  // namespace attnres::train
