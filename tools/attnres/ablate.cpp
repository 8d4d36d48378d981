// attnres ablate — train several residual variants under identical conditions and compare them.
//
// Every (seed, variant) run uses the same data order (the batch sampler is seeded with the run's
// seed), the same initialisation of the shared weights (LM::init_weights(seed) draws them in the
// same order for every policy and leaves the policy's own pseudo-queries at 0 and key-norm gains
// at 1; each run prints a hash of its shared weights and the tool checks they agree), and the
// same token budget, schedule and evaluation windows. Each run trains in a forked child process,
// so its peak memory is that process's peak resident set (wait4 → ru_maxrss) and one run cannot
// disturb the next. The parent collects what the children wrote and produces, in --out:
//
//   config.json       the command line, the data, the model and training options
//   ablation.csv      one row per variant × seed
//   summary.csv/.json per variant: mean and sample std over seeds
//   curves.csv        variant, seed, step, training loss, validation loss (where evaluated)
//   diagnostics.csv   tidy rows (variant, seed, step, quantity, depth, source, value) of the
//   diagnostics.json  depth diagnostics (model/diagnostics.hpp) recorded on a fixed probe batch
//   runs/<variant>-seed<k>/run.json   everything one child reported
//   *.png             drawn by tools/plot_ablation.py (python3-matplotlib) when available
//
// FLOPs per token: training_flops_per_token (model/cost.hpp).

#include "common.hpp"
#include "run_command.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef ATTNRES_SOURCE_DIR
#define ATTNRES_SOURCE_DIR ""
#endif

namespace attnres::cli {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr double nan_value = std::numeric_limits<double>::quiet_NaN();

// ---- variants --------------------------------------------------------------------------------

struct variant {
  std::string name;  // as given: sum, full, block:N
  architecture arch;
  int blocks = 0;  // N for block, L for full, 0 for sum (the x axis of "loss vs blocks")
};

std::vector<variant> parse_variants(const std::string& list, const model_config& cfg, const std::string& mlp) {
  std::vector<variant> out;
  std::stringstream ss(list);
  std::string item;
  const int L = cfg.n_sublayers();
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    variant v;
    v.name = item;
    v.arch.mlp = mlp;
    if (item == "sum") {
      v.arch.residual = "sum";
      v.arch.blocks = 0;
    } else if (item == "full") {
      v.arch.residual = "full";
      v.arch.blocks = L;
      v.blocks = L;
    } else if (item.rfind("block:", 0) == 0) {
      const std::string n = item.substr(6);
      char* end = nullptr;
      const long long N = std::strtoll(n.c_str(), &end, 10);
      if (n.empty() || *end != '\0' || N < 1)
        throw usage_problem("--variants: '" + item + "' is not block:N with a positive N");
      if (L % N != 0)
        throw usage_problem("--variants: " + item + ": " + n + " blocks do not divide L = " + std::to_string(L) +
                            " sublayers (2 per transformer layer)");
      v.arch.residual = "block";
      v.arch.blocks = static_cast<int>(N);
      v.blocks = static_cast<int>(N);
    } else {
      throw usage_problem("--variants: unknown variant '" + item + "' (expected sum, full or block:N)");
    }
    for (const auto& w : out)
      if (w.name == v.name) throw usage_problem("--variants: '" + item + "' is listed twice");
    with_model(v.arch, []<class Model>(std::type_identity<Model>) {});  // refuses block counts not built in
    out.push_back(v);
  }
  if (out.empty()) throw usage_problem("--variants is empty");
  return out;
}

// ---- small helpers ------------------------------------------------------------------------------

double seconds_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

json number_or_null(double x) { return std::isfinite(x) ? json(x) : json(nullptr); }
double to_number(const json& j) { return j.is_number() ? j.get<double>() : nan_value; }

std::string fmt(const char* f, double x) {
  if (!std::isfinite(x)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, f, x);
  return buf;
}

// s right-aligned in `width` columns (counting UTF-8 code points, so "±" is one column).
std::string pad(const std::string& s, std::size_t width) {
  std::size_t cols = 0;
  for (unsigned char c : s) cols += (c & 0xC0) != 0x80;
  return cols >= width ? s : std::string(width - cols, ' ') + s;
}

// FNV-1a over the bytes of every parameter the residual policies share (all but *_res.*).
template <class Model>
std::string shared_weights_hash(Model& m) {
  std::uint64_t h = 1469598103934665603ull;
  for (const auto& p : m.parameters()) {
    if (p.name.find("_res.") != std::string::npos) continue;
    const auto* bytes = reinterpret_cast<const unsigned char*>(p.value);
    for (std::size_t i = 0; i < static_cast<std::size_t>(p.size()) * sizeof(*p.value); ++i) {
      h ^= bytes[i];
      h *= 1099511628211ull;
    }
  }
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

json diagnostics_to_json(const depth_diagnostics::record& r, bool per_token) {
  json points = json::array(), sources = json::array();
  for (const auto& p : r.points) {
    json jp = {{"l", p.l},
               {"input_rms", number_or_null(p.input_rms)},
               {"entropy", number_or_null(p.entropy)},
               {"effective_sources", number_or_null(p.effective_sources)},
               {"alpha_mean", p.alpha_mean}};
    if (per_token && !p.alpha_tokens.empty()) jp["alpha_tokens"] = p.alpha_tokens;
    points.push_back(std::move(jp));
  }
  for (const auto& s : r.sources)
    sources.push_back({{"j", s.j}, {"output_rms", number_or_null(s.output_rms)}, {"grad_norm", number_or_null(s.grad_norm)}});
  return {{"step", r.step}, {"tokens", r.tokens}, {"n_sublayers", r.n_sublayers}, {"points", points}, {"sources", sources}};
}

void write_text(const fs::path& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary);
  out << s;
  expects<io_error>(out.good(), "ablate: cannot write '", p.string(), "'");
}

json read_json(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  expects<io_error>(in.is_open(), "ablate: cannot read '", p.string(), "'");
  return json::parse(in);
}

// ---- one run (in the child process) -------------------------------------------------------------

struct ablate_options {
  model_config cfg;
  train::train_options opt;
  std::int64_t eval_every = 0, diag_every = 0;
  bool alpha_per_token = false;
  long long threads = 0;
  int timing_rounds = 8;  // rounds of the alternated timing against Sum (0: none)
};

template <class Model>
json train_one(const variant& v, std::uint64_t seed, const ablate_options& o, const train::byte_corpus& train_data,
               const train::byte_corpus& val_data, const std::string& label) {
  using clock = std::chrono::steady_clock;
  const auto wall_start = clock::now();
  Model model(o.cfg);
  model.init_weights(seed);
  train::train_options opt = o.opt;
  opt.seed = seed;
  opt.eval_every = 0;  // the trainer validates only at the end; the callback below does the rest
  index_t n_params = 0;
  for (const auto& p : model.parameters()) n_params += p.size();
  const std::string init_hash = shared_weights_hash(model);
  const double flops = training_flops_per_token(model.config(), model.arch(), opt.seq);

  train::trainer<Model> tr(model, opt, train_data, val_data);

  // The probe batch for diagnostics: the first validation windows (the same for every run).
  std::vector<std::int32_t> probe_tokens, probe_targets;
  const auto windows = train::evaluation_windows(val_data, opt.seq, opt.batch);
  for (const auto& [tok, tgt] : windows) {
    probe_tokens.insert(probe_tokens.end(), tok.begin(), tok.end());
    probe_targets.insert(probe_targets.end(), tgt.begin(), tgt.end());
  }
  const auto probe_batch = static_cast<index_t>(windows.size());
  depth_diagnostics diag;
  diag.per_token_alpha = o.alpha_per_token;
  json diag_records = json::array();
  const auto record = [&](std::int64_t step) {
    diag.clear();
    diag.step = step;
    model.set_diagnostics(&diag);
    model.zero_grad();
    (void)model.forward_backward(probe_tokens, probe_targets, probe_batch, opt.seq);
    model.set_diagnostics(nullptr);
    model.zero_grad();
    diag_records.push_back(diagnostics_to_json(diag.last(), o.alpha_per_token && step == opt.steps));
  };
  record(0);

  json curve = json::array();
  const std::int64_t log_every = std::max<std::int64_t>(opt.log_every, 1);
  // Training throughput: the time between callbacks (forward, backward, clipping, AdamW),
  // excluding this callback's own evaluations and diagnostics. The last step also holds the
  // trainer's final validation, and the first one the allocations, so both are left out
  // when there are enough steps.
  auto mark = clock::now();
  double timed_seconds = 0;
  std::int64_t timed_steps = 0;
  const auto summary = tr.run([&](const train::step_report& r) {
    const double step_seconds = seconds_between(mark, clock::now());
    const bool edge = (r.step == 1 && opt.steps >= 3) || (r.step == opt.steps && opt.steps >= 2);
    if (!edge) {
      timed_seconds += step_seconds;
      ++timed_steps;
    }
    double val = r.val_loss;
    if (std::isnan(val) && o.eval_every > 0 && r.step % o.eval_every == 0) val = tr.evaluate();
    curve.push_back({r.step, r.loss, number_or_null(val), r.lr, r.grad_norm});
    if ((o.diag_every > 0 && r.step % o.diag_every == 0) || r.step == opt.steps) record(r.step);
    const double tps = timed_seconds > 0
                           ? static_cast<double>(timed_steps * opt.batch * opt.seq * opt.accum) / timed_seconds
                           : r.tokens_per_second;
    if (r.step % log_every == 0 || r.step == opt.steps) {
      std::printf("%s step %lld/%lld  loss %.4f", label.c_str(), static_cast<long long>(r.step),
                  static_cast<long long>(opt.steps), r.loss);
      if (!std::isnan(val)) std::printf("  val %.4f", val);
      std::printf("  %s tok/s  ETA %s\n", train::progress::rate(tps).c_str(),
                  train::progress::duration(train::progress::eta(r.step, opt.steps, r.elapsed_seconds)).c_str());
      std::fflush(stdout);
    }
    mark = clock::now();
  });
  const double tokens_per_second =
      timed_seconds > 0 ? static_cast<double>(timed_steps * opt.batch * opt.seq * opt.accum) / timed_seconds
                        : summary.tokens_per_second;
  return {{"variant", v.name},
          {"residual", v.arch.residual},
          {"blocks", v.blocks},
          {"seed", seed},
          {"model", Model::describe(model.arch())},
          {"parameters", n_params},
          {"flops_per_token", flops},
          {"shared_init_hash", init_hash},
          {"steps", summary.steps},
          {"tokens", summary.steps * opt.batch * opt.seq * opt.accum},
          {"final_train_loss", number_or_null(summary.final_loss)},
          {"val_loss", number_or_null(summary.val_loss)},
          {"val_bits_per_byte", number_or_null(summary.val_bits_per_byte)},
          {"train_tokens_per_s", tokens_per_second},
          {"train_seconds", timed_seconds},
          {"wall_seconds", seconds_between(wall_start, clock::now())},
          {"curve_columns", {"step", "loss", "val_loss", "lr", "grad_norm"}},
          {"curve", curve},
          {"diagnostics", diag_records}};
}

// The variants' training steps timed in one process, taking turns: after one untimed step each,
// `rounds` rounds in which every variant runs `steps` steps (the order rotated every round), and
// per round each variant's median step over Sum's. A slow moment of a shared machine slows every
// variant of a round alike and cancels in the ratio; the runs' own throughputs, measured one after
// the other, drift by more than the differences they are meant to show (docs/ablation.md).
// Returns per variant the median and quartiles of its ratios minus 1 (Sum's own ≈ 0).
json time_alternated(const std::vector<variant>& variants, const ablate_options& o, const train::byte_corpus& data,
                     int rounds, int steps) {
  const auto windows = train::evaluation_windows(data, o.opt.seq, o.opt.batch);
  std::vector<std::int32_t> tokens, targets;
  for (const auto& [tok, tgt] : windows) {
    tokens.insert(tokens.end(), tok.begin(), tok.end());
    targets.insert(targets.end(), tgt.begin(), tgt.end());
  }
  const auto batch = static_cast<index_t>(windows.size());
  std::vector<std::function<double()>> step_of;  // one training step of variant i, its seconds
  for (const auto& v : variants)
    with_model(v.arch, [&]<class Model>(std::type_identity<Model>) {
      struct state {
        Model model;
        decltype(std::declval<Model&>().parameters()) params;
        train::adamw<float, typename Model::backend> opt;
        explicit state(const ablate_options& o)
            : model(o.cfg), params((model.init_weights(1), model.parameters())),
              opt({.lr = o.opt.lr, .weight_decay = o.opt.weight_decay}, params) {}
      };
      auto st = std::make_shared<state>(o);
      const double clip = o.opt.grad_clip;
      step_of.push_back([st, clip, batch, seq = o.opt.seq, &tokens, &targets] {
        const auto t0 = std::chrono::steady_clock::now();
        st->model.zero_grad();
        (void)st->model.forward_backward(tokens, targets, batch, seq);
        if (clip > 0) train::clip_grad_norm(st->params, clip);
        st->opt.step(st->params);
        return seconds_between(t0, std::chrono::steady_clock::now());
      });
    });
  const std::size_t n = variants.size();
  std::size_t sum = n;
  for (std::size_t i = 0; i < n; ++i)
    if (variants[i].name == "sum") sum = i;
  expects<error>(sum < n, "ablate: timing against Sum needs the sum variant");
  for (auto& step : step_of) (void)step();  // allocations
  std::vector<std::vector<double>> ratio(n);
  for (int r = 0; r < rounds; ++r) {
    std::vector<double> median_step(n);
    for (std::size_t k = 0; k < n; ++k) {
      const std::size_t i = (k + static_cast<std::size_t>(r)) % n;
      std::vector<double> t;
      for (int s = 0; s < steps; ++s) t.push_back(step_of[i]());
      median_step[i] = median(std::move(t));
    }
    for (std::size_t i = 0; i < n; ++i) ratio[i].push_back(median_step[i] / median_step[sum]);
  }
  auto quantile = [](std::vector<double> v, double q) {
    std::sort(v.begin(), v.end());
    return v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5)] - 1.0;
  };
  json out = json::object();
  for (std::size_t i = 0; i < n; ++i)
    out[variants[i].name] = {{"median", quantile(ratio[i], 0.5)},
                             {"q25", quantile(ratio[i], 0.25)},
                             {"q75", quantile(ratio[i], 0.75)}};
  return {{"rounds", rounds}, {"steps_per_round", steps}, {"batch", batch}, {"overhead", out}};
}

// Runs body() in a child process; returns (exit status, peak RSS of the child in KiB).
std::pair<int, long> run_in_child(const std::function<int()>& body) {
  std::fflush(nullptr);
  std::cout.flush();
  const pid_t pid = ::fork();
  expects<error>(pid >= 0, "ablate: fork failed");
  if (pid == 0) {
    int code = 1;
    try {
      code = body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "attnres ablate: error in the run: %s\n", e.what());
    }
    std::fflush(nullptr);
    std::cout.flush();
    ::_exit(code);
  }
  int status = 0;
  struct rusage usage {};
  while (::wait4(pid, &status, 0, &usage) < 0)
    if (errno != EINTR) throw error("ablate: wait4 failed");
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  return {code, usage.ru_maxrss};  // Linux: KiB
}

// ---- aggregation ----------------------------------------------------------------------------------

struct stats {
  double mean = nan_value, std = nan_value;
  int n = 0;
};
stats mean_std(const std::vector<double>& xs) {
  stats s;
  double sum = 0;
  for (double x : xs)
    if (std::isfinite(x)) {
      sum += x;
      ++s.n;
    }
  if (s.n == 0) return s;
  s.mean = sum / s.n;
  if (s.n >= 2) {
    double sq = 0;
    for (double x : xs)
      if (std::isfinite(x)) sq += (x - s.mean) * (x - s.mean);
    s.std = std::sqrt(sq / (s.n - 1));
  }
  return s;
}

std::string csv_number(double x) {
  if (!std::isfinite(x)) return "";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", x);
  return buf;
}

// Finds tools/plot_ablation.py: the source tree this tool was built from, or an installed copy.
std::optional<fs::path> find_plot_script() {
  std::vector<fs::path> candidates;
  if (const char* env = std::getenv("ATTNRES_PLOT_SCRIPT")) candidates.emplace_back(env);
  if (std::string(ATTNRES_SOURCE_DIR).size()) candidates.push_back(fs::path(ATTNRES_SOURCE_DIR) / "tools/plot_ablation.py");
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) candidates.push_back(exe.parent_path().parent_path() / "share/attnres/plot_ablation.py");
  for (const auto& c : candidates)
    if (fs::is_regular_file(c, ec)) return c;
  return std::nullopt;
}

// Runs the plot script on dir; returns its exit code (127: could not start python3).
int run_plot_script(const fs::path& script, const fs::path& dir) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return 127;
  if (pid == 0) {
    const std::string s = script.string(), d = dir.string();
    if (::access("/usr/bin/python3", X_OK) == 0)
      ::execl("/usr/bin/python3", "python3", s.c_str(), d.c_str(), static_cast<char*>(nullptr));
    ::execlp("python3", "python3", s.c_str(), d.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return 127;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

std::string timestamp() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", &tm);
  return buf;
}

std::int64_t auto_or_integer(const args& a, const std::string& name, std::int64_t automatic) {
  if (a.str(name) == "auto") return automatic;
  return a.integer(name, 0);
}

}  // namespace

int ablate_main(int argc, char** argv) {
  args a("ablate",
         "Train each residual variant with identical data order, seeds, initialisation of the shared\n"
         "weights, token budget and schedule, then print a comparison table. Data: --data FILE, else the\n"
         "fortune(6) texts in --fortunes DIR (Debian package 'fortunes'), else the built-in synthetic\n"
         "corpus. Writes CSV/JSON (and PNG plots when python3-matplotlib is installed) to --out.");
  a.option("variants", "LIST", "comma-separated: sum, full, block:N (N in 1, 2, 4, 8 dividing L)", "sum,block:4,full")
      .option("seeds", "K", "seeds per variant (seeds S .. S+K-1); the spread is over these", "1")
      .option("seed", "S", "first seed (initialisation and data order)", "1")
      .option("seq", "T", "sequence length (bytes)", "128")
      .option("batch", "B", "sequences per micro-batch", "16")
      .option("accum", "K", "micro-batches per optimizer step", "1")
      .option("steps", "N", "optimizer steps per run", "600")
      .option("lr", "LR", "peak learning rate (warmup, then cosine to 10%)", "6e-3")
      .option("warmup", "N", "warmup steps (default: min(100, steps / 10))", "-1")
      .option("weight-decay", "X", "AdamW weight decay (not on norm gains and pseudo-queries)", "0.1")
      .option("grad-clip", "X", "clip the global gradient norm (0: off)", "1.0")
      .option("data", "FILE", "training text (default: the fortunes, else synthetic)", "")
      .option("fortunes", "DIR", "fortune(6) database used when --data is absent", "/usr/share/games/fortunes")
      .option("val-fraction", "F", "fraction of the data held out for validation (its end)", "0.1")
      .option("eval-every", "N|auto", "validate every N steps (auto: 20 times per run)", "auto")
      .option("eval-windows", "N", "validation windows of T bytes", "64")
      .option("diag-every", "N|auto", "record depth diagnostics every N steps (auto: 4 times); also at 0 and the end",
              "auto")
      .flag("alpha-per-token", "also keep the depth weights of every probe token at the last step (large)")
      .option("log-every", "N", "progress line every N steps", "25")
      .option("out", "DIR", "output folder (default: ablation/<date>-<time>)", "")
      .flag("no-plots", "write the data only; do not run tools/plot_ablation.py")
      .option("threads", "N", "threads per run (0: all cores; 1 keeps timings steady on a busy machine)", "1")
      .option("timing-rounds", "N",
              "after training, rounds of training steps with the variants taking turns in one process, for "
              "the 'vs Sum' column (0: use the runs' own throughputs)",
              "8");

  declare_model_size_options(a, {.layers = "4", .d_model = "96", .heads = "4", .d_ff = "256"});

  int exit_code = 0;
  const int rc = run_command(a, argc, argv, [&] {
    ablate_options o;
    o.threads = a.integer("threads", 0, 1024);
    o.timing_rounds = static_cast<int>(a.integer("timing-rounds", 0, 1000));
    o.cfg = model_config_from(a);
    auto& opt = o.opt;
    read_batch_and_optimizer_options(a, opt);
    opt.eval_windows = a.integer("eval-windows", 1);
    opt.log_every = a.integer("log-every", 1);
    opt.validate();
    o.eval_every = auto_or_integer(a, "eval-every", std::max<std::int64_t>(1, opt.steps / 20));
    o.diag_every = auto_or_integer(a, "diag-every", std::max<std::int64_t>(1, opt.steps / 4));
    o.alpha_per_token = a.on("alpha-per-token");
    const std::string mlp = mlp_from(a);
    const auto variants = parse_variants(a.str("variants"), o.cfg, mlp);
    const long long n_seeds = a.integer("seeds", 1, 1000);
    const auto first_seed = static_cast<std::uint64_t>(a.integer("seed", 0));
    const fs::path out = a.str("out").empty() ? fs::path("ablation") / timestamp() : fs::path(a.str("out"));

    // ---- data: --data, else the fortunes, else synthetic (and say so) ----
    std::string data_source;
    train::byte_corpus corpus = [&] {
      if (!a.str("data").empty()) {
        data_source = "file " + a.str("data");
        return train::byte_corpus::from_file(a.str("data"));
      }
      try {
        auto c = train::byte_corpus::from_fortunes(a.str("fortunes"));
        data_source = "fortunes " + a.str("fortunes");
        return c;
      } catch (const io_error& e) {
        std::printf("note: no --data and no fortune texts (%s).\n"
                    "      Training on the built-in SYNTHETIC corpus (generated English-like sentences, 4 MB).\n"
                    "      For real English text: apt-get install fortunes (or tools/ensure-deps.sh --fortunes),\n"
                    "      or pass --data FILE.\n",
                    e.what());
        data_source = "synthetic (built-in generator, 4 MB, seed 2026)";
        return train::byte_corpus::synthetic(4'000'000, 2026);
      }
    }();
    // (not a structured binding: clang 14 cannot capture those in the lambdas below)
    const auto split = corpus.split(a.number("val-fraction", 0.001, 0.9), static_cast<std::size_t>(opt.seq) + 1);
    const train::byte_corpus& train_data = split.first;
    const train::byte_corpus& val_data = split.second;

    fs::create_directories(out / "runs");
    const index_t tokens_per_run = opt.steps * opt.batch * opt.seq * opt.accum;
    std::string cmdline;
    for (int i = 0; i < argc; ++i) cmdline += (i ? " " : "") + std::string(argv[i]);
    json config = {{"command", cmdline},
                   {"data", data_source},
                   {"train_bytes", train_data.size()},
                   {"val_bytes", val_data.size()},
                   {"model", {{"vocab", o.cfg.vocab}, {"d_model", o.cfg.d_model}, {"n_heads", o.cfg.n_heads},
                              {"n_layers", o.cfg.n_layers}, {"n_sublayers", o.cfg.n_sublayers()}, {"d_ff", o.cfg.d_ff},
                              {"mlp", mlp}, {"tie_embeddings", o.cfg.tie_embeddings}}},
                   {"train", {{"seq", opt.seq}, {"batch", opt.batch}, {"accum", opt.accum}, {"steps", opt.steps},
                              {"lr", opt.lr}, {"warmup", opt.warmup_steps()}, {"min_lr_ratio", opt.min_lr_ratio},
                              {"weight_decay", opt.weight_decay}, {"grad_clip", opt.grad_clip},
                              {"eval_every", o.eval_every}, {"eval_windows", opt.eval_windows},
                              {"diag_every", o.diag_every}, {"tokens_per_run", tokens_per_run}}},
                   {"variants", json::array()},
                   {"seeds", json::array()},
                   {"threads", o.threads}};
    for (const auto& v : variants) config["variants"].push_back({{"name", v.name}, {"blocks", v.blocks}});
    for (long long k = 0; k < n_seeds; ++k) config["seeds"].push_back(first_seed + static_cast<std::uint64_t>(k));
    write_text(out / "config.json", config.dump(2) + "\n");

    std::printf("ablate: %zu variant(s) × %lld seed(s); %td layers (L = %d), d_model %td, %td heads, d_ff %td, %s\n",
                variants.size(), n_seeds, o.cfg.n_layers, o.cfg.n_sublayers(), o.cfg.d_model, o.cfg.n_heads, o.cfg.d_ff,
                mlp.c_str());
    std::printf("        %lld steps × batch %td × seq %td × accum %d = %td tokens per run, lr %g; data: %s\n"
                "        (%zu training bytes, %zu validation bytes)\n",
                static_cast<long long>(opt.steps), opt.batch, opt.seq, opt.accum, tokens_per_run, opt.lr,
                data_source.c_str(), train_data.size(), val_data.size());
    std::printf("        output: %s\n", out.c_str());
    struct rusage self {};
    ::getrusage(RUSAGE_SELF, &self);
    const double parent_rss_mb = static_cast<double>(self.ru_maxrss) / 1024.0;

    // ---- the runs: seed-major, so an interrupted ablation still has every variant of seed 1 ----
    std::vector<json> results;
    const auto total = static_cast<long long>(variants.size()) * n_seeds;
    long long done = 0;
    std::map<std::uint64_t, std::string> hash_of_seed;
    const auto ablation_start = std::chrono::steady_clock::now();
    for (long long k = 0; k < n_seeds; ++k) {
      const std::uint64_t seed = first_seed + static_cast<std::uint64_t>(k);
      for (const auto& v : variants) {
        ++done;
        const std::string label = "[" + std::to_string(done) + "/" + std::to_string(total) + " " + v.name + " seed " +
                                  std::to_string(seed) + "]";
        const fs::path run_dir = out / "runs" / (v.name.substr(0, v.name.find(':')) +
                                                 (v.blocks && v.arch.residual == "block" ? std::to_string(v.blocks) : "") +
                                                 "-seed" + std::to_string(seed));
        fs::create_directories(run_dir);
        std::printf("%s training\n", label.c_str());
        const auto [code, rss_kb] = run_in_child([&] {
#if defined(_OPENMP)
          if (o.threads > 0) omp_set_num_threads(static_cast<int>(o.threads));
#endif
          json r;
          with_model(v.arch, [&]<class Model>(std::type_identity<Model>) {
            r = train_one<Model>(v, seed, o, train_data, val_data, label);
          });
          write_text(run_dir / "run.json", r.dump() + "\n");
          return 0;
        });
        json r;
        if (code == 0 && fs::exists(run_dir / "run.json")) {
          r = read_json(run_dir / "run.json");
          r["peak_rss_mb"] = static_cast<double>(rss_kb) / 1024.0;
          r["ok"] = true;
          write_text(run_dir / "run.json", r.dump() + "\n");
          const std::string h = r["shared_init_hash"].get<std::string>();
          if (!hash_of_seed.count(seed)) hash_of_seed[seed] = h;
          if (hash_of_seed[seed] != h)
            throw error("ablate: the shared weights of " + v.name + " seed " + std::to_string(seed) +
                        " differ from the other variants' (hash " + h + " vs " + hash_of_seed[seed] +
                        ") — the comparison would not be fair");
          const double elapsed = seconds_between(ablation_start, std::chrono::steady_clock::now());
          std::printf("%s val loss %.4f (%.4f bits/byte), %.0f tokens/s, peak RSS %.0f MB, %.0f s; ETA %s\n",
                      label.c_str(), to_number(r["val_loss"]), to_number(r["val_bits_per_byte"]),
                      to_number(r["train_tokens_per_s"]), to_number(r["peak_rss_mb"]), to_number(r["wall_seconds"]),
                      train::progress::duration(train::progress::eta(done, total, elapsed)).c_str());
        } else {
          std::printf("%s FAILED (exit status %d); continuing with the other runs\n", label.c_str(), code);
          r = {{"variant", v.name}, {"blocks", v.blocks}, {"seed", seed}, {"ok", false}, {"exit_status", code}};
          exit_code = 1;
        }
        results.push_back(std::move(r));
      }
    }

    // ---- the variants' step times against Sum's, in one process (the "vs Sum" column) ----
    json timing;
    const bool have_sum = std::any_of(variants.begin(), variants.end(), [](const variant& v) { return v.name == "sum"; });
    if (o.timing_rounds > 0 && have_sum && variants.size() >= 2) {
      std::printf("[timing] %d rounds of 2 training steps per variant, taking turns\n", o.timing_rounds);
      const auto [code, rss_kb] = run_in_child([&] {
#if defined(_OPENMP)
        if (o.threads > 0) omp_set_num_threads(static_cast<int>(o.threads));
#endif
        write_text(out / "timing.json", time_alternated(variants, o, train_data, o.timing_rounds, 2).dump(2) + "\n");
        return 0;
      });
      (void)rss_kb;
      if (code == 0 && fs::exists(out / "timing.json"))
        timing = read_json(out / "timing.json");
      else
        std::printf("[timing] FAILED (exit status %d); 'vs Sum' from the runs' throughputs\n", code);
    }

    // ---- files ----
    {
      std::ostringstream csv;
      csv << "variant,blocks,seed,ok,parameters,flops_per_token,tokens,final_train_loss,val_loss,val_bits_per_byte,"
             "train_tokens_per_s,train_seconds,wall_seconds,peak_rss_mb,shared_init_hash\n";
      for (const auto& r : results) {
        const bool ok = r.value("ok", false);
        csv << r["variant"].get<std::string>() << ',' << r["blocks"].get<int>() << ',' << r["seed"].get<std::uint64_t>()
            << ',' << (ok ? 1 : 0);
        for (const char* key : {"parameters", "flops_per_token", "tokens", "final_train_loss", "val_loss",
                                "val_bits_per_byte", "train_tokens_per_s", "train_seconds", "wall_seconds",
                                "peak_rss_mb"})
          csv << ',' << (ok ? csv_number(to_number(r[key])) : "");
        csv << ',' << (ok ? r["shared_init_hash"].get<std::string>() : "") << '\n';
      }
      write_text(out / "ablation.csv", csv.str());
    }
    {
      std::ostringstream csv;
      csv << "variant,seed,step,loss,val_loss\n";
      for (const auto& r : results) {
        if (!r.value("ok", false)) continue;
        for (const auto& row : r["curve"])
          csv << r["variant"].get<std::string>() << ',' << r["seed"].get<std::uint64_t>() << ','
              << row[0].get<std::int64_t>() << ',' << csv_number(to_number(row[1])) << ','
              << csv_number(to_number(row[2])) << '\n';
      }
      write_text(out / "curves.csv", csv.str());
    }
    {
      std::ostringstream csv;
      csv << "variant,seed,step,quantity,depth,source,value\n";
      json all = json::object();
      for (const auto& r : results) {
        if (!r.value("ok", false)) continue;
        const std::string name = r["variant"].get<std::string>();
        const std::string seed = std::to_string(r["seed"].get<std::uint64_t>());
        all[name][seed] = r["diagnostics"];
        for (const auto& rec : r["diagnostics"]) {
          const std::string prefix = name + "," + seed + "," + std::to_string(rec["step"].get<std::int64_t>()) + ",";
          for (const auto& p : rec["points"]) {
            const std::string l = std::to_string(p["l"].get<int>());
            csv << prefix << "input_rms," << l << ",," << csv_number(to_number(p["input_rms"])) << '\n';
            if (p["alpha_mean"].empty()) continue;
            csv << prefix << "entropy," << l << ",," << csv_number(to_number(p["entropy"])) << '\n';
            csv << prefix << "effective_sources," << l << ",," << csv_number(to_number(p["effective_sources"])) << '\n';
            for (std::size_t j = 0; j < p["alpha_mean"].size(); ++j)
              csv << prefix << "alpha," << l << ',' << j << ',' << csv_number(to_number(p["alpha_mean"][j])) << '\n';
          }
          for (const auto& s : rec["sources"]) {
            const std::string j = std::to_string(s["j"].get<int>());
            csv << prefix << "output_rms," << j << ",," << csv_number(to_number(s["output_rms"])) << '\n';
            csv << prefix << "grad_norm," << j << ",," << csv_number(to_number(s["grad_norm"])) << '\n';
          }
        }
      }
      write_text(out / "diagnostics.csv", csv.str());
      write_text(out / "diagnostics.json",
                 json{{"about", "depth diagnostics on a fixed probe batch (the first validation windows); "
                                "see include/attnres/model/diagnostics.hpp"},
                      {"n_sublayers", o.cfg.n_sublayers()},
                      {"variants", all}}
                         .dump() +
                     "\n");
    }

    // summary per variant
    struct row {
      std::string name;
      int blocks = 0;
      double params = nan_value, flops = nan_value, rss = nan_value;
      stats val, bpb, train_loss, tps;
      double overhead = nan_value;
      int ok_runs = 0;
    };
    std::vector<row> rows;
    for (const auto& v : variants) {
      row w;
      w.name = v.name;
      w.blocks = v.blocks;
      std::vector<double> val, bpb, tl, tps, rss;
      for (const auto& r : results) {
        if (r["variant"] != v.name || !r.value("ok", false)) continue;
        ++w.ok_runs;
        w.params = to_number(r["parameters"]);
        w.flops = to_number(r["flops_per_token"]);
        val.push_back(to_number(r["val_loss"]));
        bpb.push_back(to_number(r["val_bits_per_byte"]));
        tl.push_back(to_number(r["final_train_loss"]));
        tps.push_back(to_number(r["train_tokens_per_s"]));
        rss.push_back(to_number(r["peak_rss_mb"]));
      }
      w.val = mean_std(val);
      w.bpb = mean_std(bpb);
      w.train_loss = mean_std(tl);
      w.tps = mean_std(tps);
      w.rss = rss.empty() ? nan_value : *std::max_element(rss.begin(), rss.end());
      rows.push_back(w);
    }
    for (auto& w : rows)
      if (timing.contains("overhead") && timing["overhead"].contains(w.name))
        w.overhead = to_number(timing["overhead"][w.name]["median"]);  // step time relative to Sum's, in one process
      else
        for (const auto& s : rows)
          if (s.name == "sum" && std::isfinite(s.tps.mean) && std::isfinite(w.tps.mean))
            w.overhead = s.tps.mean / w.tps.mean - 1.0;  // time per token relative to Sum, from the runs
    {
      std::ostringstream csv;
      csv << "variant,blocks,runs,parameters,flops_per_token,val_loss_mean,val_loss_std,val_bpb_mean,val_bpb_std,"
             "train_loss_mean,train_loss_std,train_tokens_per_s_mean,train_tokens_per_s_std,time_overhead_vs_sum,"
             "peak_rss_mb\n";
      json js = json::array();
      for (const auto& w : rows) {
        csv << w.name << ',' << w.blocks << ',' << w.ok_runs << ',' << csv_number(w.params) << ','
            << csv_number(w.flops) << ',' << csv_number(w.val.mean) << ',' << csv_number(w.val.std) << ','
            << csv_number(w.bpb.mean) << ',' << csv_number(w.bpb.std) << ',' << csv_number(w.train_loss.mean) << ','
            << csv_number(w.train_loss.std) << ',' << csv_number(w.tps.mean) << ',' << csv_number(w.tps.std) << ','
            << csv_number(w.overhead) << ',' << csv_number(w.rss) << '\n';
        js.push_back({{"variant", w.name},
                      {"blocks", w.blocks},
                      {"runs", w.ok_runs},
                      {"parameters", number_or_null(w.params)},
                      {"flops_per_token", number_or_null(w.flops)},
                      {"val_loss", {{"mean", number_or_null(w.val.mean)}, {"std", number_or_null(w.val.std)}}},
                      {"val_bits_per_byte", {{"mean", number_or_null(w.bpb.mean)}, {"std", number_or_null(w.bpb.std)}}},
                      {"final_train_loss",
                       {{"mean", number_or_null(w.train_loss.mean)}, {"std", number_or_null(w.train_loss.std)}}},
                      {"train_tokens_per_s", {{"mean", number_or_null(w.tps.mean)}, {"std", number_or_null(w.tps.std)}}},
                      {"time_overhead_vs_sum", number_or_null(w.overhead)},
                      {"peak_rss_mb", number_or_null(w.rss)}});
      }
      write_text(out / "summary.csv", csv.str());
      write_text(out / "summary.json",
                 json{{"n_sublayers", o.cfg.n_sublayers()},
                      {"seeds", config["seeds"]},
                      {"tokens_per_run", tokens_per_run},
                      {"data", data_source},
                      {"std", "sample standard deviation over seeds (n − 1); null with one seed"},
                      {"peak_rss_mb", "peak resident set of the child process that trained the variant (wait4 "
                                      "ru_maxrss), max over seeds; includes what it shares with the parent"},
                      {"time_overhead_vs_sum",
                       timing.is_null() ? "Sum's training tokens/s divided by the variant's, minus 1"
                                        : "the variant's training step over Sum's, minus 1: the median over rounds "
                                          "in one process with the variants taking turns (timing.json)"},
                      {"variants", js}}
                         .dump(2) +
                     "\n");
    }

    // ---- the table ----
    std::printf("\n%-9s %8s %10s %19s %9s %9s %9s %9s\n", "variant", "params", "FLOPs/tok", "val loss (nats)",
                "bits/byte", "tok/s", "vs Sum", "peak MB");
    for (const auto& w : rows) {
      std::string val = fmt("%.4f", w.val.mean);
      if (w.val.n >= 2) val += " ± " + fmt("%.4f", w.val.std);
      std::string overhead = std::isfinite(w.overhead) ? fmt("%+.1f%%", 100 * w.overhead) : "-";
      std::printf("%-9s %7.3fM %9.2fM %s %9s %9s %9s %9s\n", w.name.c_str(), w.params / 1e6, w.flops / 1e6,
                  pad(val, 19).c_str(), fmt("%.4f", w.bpb.mean).c_str(), fmt("%.0f", w.tps.mean).c_str(),
                  overhead.c_str(), fmt("%.0f", w.rss).c_str());
    }
    std::printf("%lld seed(s) per variant (± = sample std over seeds); FLOPs/tok = training (forward + backward) per "
                "token;\ntok/s = training throughput; vs Sum = extra time per token (%s);\npeak MB = peak RSS of "
                "the run's child process (wait4 ru_maxrss; ~%.0f MB of it is the parent's program and data, shared).\n",
                n_seeds,
                timing.is_null() ? "from the runs' throughputs"
                                 : "median of alternated rounds in one process, timing.json",
                parent_rss_mb);
    std::printf("Total time %s.\n",
                train::progress::duration(seconds_between(ablation_start, std::chrono::steady_clock::now())).c_str());

    // ---- pictures ----
    if (!a.on("no-plots")) {
      const auto script = find_plot_script();
      if (!script) {
        std::printf("\nplots: tools/plot_ablation.py not found (set ATTNRES_PLOT_SCRIPT); the data files are in %s\n",
                    out.c_str());
      } else {
        std::printf("\nplots: %s %s\n", script->c_str(), out.c_str());
        const int pc = run_plot_script(*script, out);
        if (pc != 0)
          std::printf("plots: not drawn (%s); the CSV/JSON data files are complete. Install python3-matplotlib\n"
                      "       (tools/ensure-deps.sh python3-matplotlib) and run: /usr/bin/python3 %s %s\n",
                      pc == 3 ? "python3-matplotlib is not installed"
                      : pc == 127 ? "python3 could not be started"
                                  : "the plot script failed",
                      script->c_str(), out.c_str());
      }
    }
    std::printf("\nresults: %s\n", fs::absolute(out).c_str());
  });
  return rc != 0 ? rc : exit_code;
}

}  // namespace attnres::cli
