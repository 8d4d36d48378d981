#pragma once
// model_config: the run-time sizes of a model, and its round trip through the string
// key/value `__metadata__` of a safetensors file (DESIGN.md's interoperability contract).
// architecture: the compile-time choices (residual policy, blocks, MLP, norm) as strings, so a
// file or a command line can name them; model/dispatch.hpp turns them into types.

#include <attnres/core/error.hpp>
#include <attnres/core/tensor.hpp>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <map>
#include <sstream>
#include <string>

namespace attnres {

struct model_config {
  index_t vocab = 256;
  index_t d_model = 256;
  index_t n_heads = 4;
  index_t n_layers = 8;  // transformer layers; L = 2·n_layers sublayers
  index_t d_ff = 704;
  double norm_eps = 1e-6;
  double rope_theta = 10000.0;
  bool tie_embeddings = false;

  int n_sublayers() const { return static_cast<int>(2 * n_layers); }

  void validate() const {
    expects<config_error>(vocab >= 1, "model: vocab must be positive, got ", vocab);
    expects<config_error>(d_model >= 2, "model: d_model must be at least 2, got ", d_model);
    expects<config_error>(n_heads >= 1 && d_model % n_heads == 0, "model: d_model ", d_model,
                          " is not divisible by n_heads ", n_heads);
    expects<config_error>((d_model / n_heads) % 2 == 0, "model: head dimension d_model / n_heads = ",
                          d_model / n_heads, " must be even (RoPE rotates pairs)");
    expects<config_error>(n_layers >= 1, "model: n_layers must be positive, got ", n_layers);
    expects<config_error>(d_ff >= 1, "model: d_ff must be positive, got ", d_ff);
    expects<config_error>(norm_eps > 0 && std::isfinite(norm_eps), "model: norm_eps must be positive, got ", norm_eps);
    expects<config_error>(rope_theta > 0 && std::isfinite(rope_theta), "model: rope_theta must be positive, got ",
                          rope_theta);
  }
};

// The compile-time part of a model, spelled as in the file metadata.
struct architecture {
  std::string residual = "block";  // sum | full | block
  int blocks = 4;                  // N for block; L for full; 0 for sum
  std::string mlp = "swiglu";      // swiglu | gelu
  std::string norm = "rmsnorm";    // rmsnorm | layernorm
};

namespace detail {
inline std::string format_double(double v) {
  std::ostringstream os;
  os.precision(17);
  os << v;
  return os.str();
}
inline const std::string& meta_get(const std::map<std::string, std::string>& m, const std::string& key,
                                   const std::string& source) {
  const auto it = m.find(key);
  expects<io_error>(it != m.end(), source, ": metadata has no '", key, "' (a model file needs its config)");
  return it->second;
}
inline long long meta_int(const std::map<std::string, std::string>& m, const std::string& key,
                          const std::string& source) {
  const std::string& s = meta_get(m, key, source);
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  expects<io_error>(!s.empty() && end && *end == '\0' && errno == 0, source, ": metadata '", key, "' = '", s,
                    "' is not an integer");
  return v;
}
inline double meta_double(const std::map<std::string, std::string>& m, const std::string& key,
                          const std::string& source) {
  const std::string& s = meta_get(m, key, source);
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(s.c_str(), &end);
  expects<io_error>(!s.empty() && end && *end == '\0' && errno == 0 && std::isfinite(v), source, ": metadata '", key,
                    "' = '", s, "' is not a finite number");
  return v;
}
}  // namespace detail

inline std::map<std::string, std::string> to_metadata(const model_config& c, const architecture& a) {
  return {{"vocab", std::to_string(c.vocab)},
          {"d_model", std::to_string(c.d_model)},
          {"n_heads", std::to_string(c.n_heads)},
          {"n_layers", std::to_string(c.n_layers)},
          {"d_ff", std::to_string(c.d_ff)},
          {"norm_eps", detail::format_double(c.norm_eps)},
          {"rope_theta", detail::format_double(c.rope_theta)},
          {"tie_embeddings", c.tie_embeddings ? "true" : "false"},
          {"residual", a.residual},
          {"blocks", std::to_string(a.blocks)},
          {"mlp", a.mlp},
          {"norm", a.norm}};
}

// Reads and validates a config from file metadata; `source` names the file in errors.
inline std::pair<model_config, architecture> from_metadata(const std::map<std::string, std::string>& m,
                                                           const std::string& source) {
  using namespace detail;
  model_config c;
  architecture a;
  c.vocab = meta_int(m, "vocab", source);
  c.d_model = meta_int(m, "d_model", source);
  c.n_heads = meta_int(m, "n_heads", source);
  c.n_layers = meta_int(m, "n_layers", source);
  c.d_ff = meta_int(m, "d_ff", source);
  c.norm_eps = meta_double(m, "norm_eps", source);
  c.rope_theta = meta_double(m, "rope_theta", source);
  const std::string tie = meta_get(m, "tie_embeddings", source);
  expects<io_error>(tie == "true" || tie == "false", source, ": metadata 'tie_embeddings' = '", tie,
                    "' is not true or false");
  c.tie_embeddings = tie == "true";
  // Absurd sizes would make the loader allocate without bound before any shape check.
  for (auto [key, v] : {std::pair{"vocab", c.vocab}, {"d_model", c.d_model}, {"n_heads", c.n_heads},
                        {"n_layers", c.n_layers}, {"d_ff", c.d_ff}})
    expects<io_error>(v >= 1 && v <= (index_t(1) << 24), source, ": metadata '", key, "' = ", v, " is out of range");
  try {
    c.validate();
  } catch (const config_error& e) {
    throw io_error(source + ": metadata describes an impossible model: " + e.what());
  }
  a.residual = meta_get(m, "residual", source);
  expects<io_error>(a.residual == "sum" || a.residual == "full" || a.residual == "block", source,
                    ": metadata 'residual' = '", a.residual, "' is not sum, full or block");
  a.blocks = static_cast<int>(meta_int(m, "blocks", source));
  a.mlp = m.count("mlp") ? m.at("mlp") : "swiglu";
  a.norm = m.count("norm") ? m.at("norm") : "rmsnorm";
  expects<io_error>(a.mlp == "swiglu" || a.mlp == "gelu", source, ": metadata 'mlp' = '", a.mlp,
                    "' is not swiglu or gelu");
  expects<io_error>(a.norm == "rmsnorm" || a.norm == "layernorm", source, ": metadata 'norm' = '", a.norm,
                    "' is not rmsnorm or layernorm");
  return {c, a};
}

}  // namespace attnres
