#pragma once
// A small, strict command-line parser for the attnres tool: every flag is declared with its
// help text; unknown flags, missing values and malformed numbers are errors (exit code 2 with
// usage), never silently ignored.

#include <attnres/core/error.hpp>

#include <cerrno>
#include <climits>
#include <stdexcept>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace attnres::cli {

// Thrown for bad command lines; main() prints the message and the usage, and exits with 2.
struct usage_problem : error {
  using error::error;
};

class args {
 public:
  args(std::string command, std::string summary) : command_(std::move(command)), summary_(std::move(summary)) {}

  // Declares a flag taking a value. `def` is shown in the help ("" = required when `required`).
  args& option(std::string name, std::string value_name, std::string help, std::string def = "", bool required = false) {
    specs_.push_back({std::move(name), std::move(value_name), std::move(help), std::move(def), required, false});
    return *this;
  }
  // Declares a boolean switch (no value).
  args& flag(std::string name, std::string help) {
    specs_.push_back({std::move(name), "", std::move(help), "", false, true});
    return *this;
  }

  // Returns false when --help was given (the caller prints usage() and exits 0).
  bool parse(int argc, char** argv, int first) {
    for (int i = first; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "--help" || a == "-h") return false;
      if (a.rfind("--", 0) != 0) throw usage_problem("unexpected argument '" + a + "'");
      std::string value;
      bool has_inline = false;
      if (const auto eq = a.find('='); eq != std::string::npos) {
        value = a.substr(eq + 1);
        a = a.substr(0, eq);
        has_inline = true;
      }
      const spec* s = find(a.substr(2));
      if (!s) throw usage_problem("unknown option '" + a + "' for '" + command_ + "'");
      if (s->is_flag) {
        if (has_inline) throw usage_problem("option '" + a + "' takes no value");
        values_[s->name] = "true";
        continue;
      }
      if (!has_inline) {
        if (i + 1 >= argc) throw usage_problem("option '" + a + "' needs a value (" + s->value_name + ")");
        value = argv[++i];
      }
      values_[s->name] = value;
    }
    for (const auto& s : specs_)
      if (s.required && !values_.count(s.name)) throw usage_problem("missing required option --" + s.name);
    return true;
  }

  bool has(const std::string& name) const { return values_.count(name) > 0; }
  bool on(const std::string& name) const { return has(name); }

  std::string str(const std::string& name) const {
    if (auto it = values_.find(name); it != values_.end()) return it->second;
    return declared(name).def;
  }
  long long integer(const std::string& name, long long lo = LLONG_MIN, long long hi = LLONG_MAX) const {
    const std::string s = str(name);
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || errno != 0) throw usage_problem("--" + name + " expects an integer, got '" + s + "'");
    if (v < lo || v > hi)
      throw usage_problem("--" + name + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + s);
    return v;
  }
  double number(const std::string& name, double lo = -HUGE_VAL, double hi = HUGE_VAL) const {
    const std::string s = str(name);
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(s.c_str(), &end);
    if (s.empty() || *end != '\0' || errno != 0 || !std::isfinite(v))
      throw usage_problem("--" + name + " expects a number, got '" + s + "'");
    if (v < lo || v > hi) {
      std::ostringstream os;
      os << "--" << name << " must be in [" << lo << ", " << hi << "], got " << s;
      throw usage_problem(os.str());
    }
    return v;
  }

  std::string usage() const {
    std::ostringstream os;
    os << "usage: attnres " << command_ << " [options]\n\n" << summary_ << "\n\noptions:\n";
    for (const auto& s : specs_) {
      std::string left = "  --" + s.name + (s.is_flag ? "" : " " + s.value_name);
      os << left << std::string(left.size() < 28 ? 28 - left.size() : 2, ' ') << s.help;
      if (s.required) os << " (required)";
      else if (!s.def.empty()) os << " [default: " << s.def << "]";
      os << "\n";
    }
    os << "  --help                    show this help\n";
    return os.str();
  }

 private:
  struct spec {
    std::string name, value_name, help, def;
    bool required, is_flag;
  };
  const spec* find(const std::string& name) const {
    for (const auto& s : specs_)
      if (s.name == name) return &s;
    return nullptr;
  }
  const spec& declared(const std::string& name) const {
    const spec* s = find(name);
    if (!s) throw std::logic_error("attnres cli: option --" + name + " was never declared");
    return *s;
  }
  std::string command_, summary_;
  std::vector<spec> specs_;
  std::map<std::string, std::string> values_;
};

}  // namespace attnres::cli
