// train/metrics_log: CSV content, appending after a crash, errors; the progress printer's two
// styles and its number formats.

#include "test_util.hpp"
#include "temp_dir.hpp"

#include <attnres/train/metrics_log.hpp>

#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

using attnres::train::metrics_log;
using attnres::train::progress;
using attnres_test::contains;
using attnres_test::read_text;

TEST_CASE("metrics_log: header, one flushed line per row, shortest round-trip numbers", "[train][metrics]") {
  attnres_test::temp_dir dir;
  const auto path = dir / "metrics.csv";
  metrics_log log(path, {"step", "loss", "lr"});
  CHECK(log.columns().size() == 3);
  CHECK(read_text(path) == "step,loss,lr\n");  // the header is on disk immediately
  log.row({1, 2.5, 1e-3});
  CHECK(read_text(path) == "step,loss,lr\n1,2.5,0.001\n");  // and each row as soon as it is added
  log.row({2, 0.1 + 0.2, std::numeric_limits<double>::quiet_NaN()});
  CHECK(read_text(path) == "step,loss,lr\n1,2.5,0.001\n2,0.30000000000000004,nan\n");

  REQUIRE_THROWS_AS(log.row({3, 1.0}), attnres::usage_error);
  REQUIRE_THROWS_WITH(log.row({3, 1.0}), contains("row has 2 values but there are 3 columns"));
  CHECK(read_text(path) == "step,loss,lr\n1,2.5,0.001\n2,0.30000000000000004,nan\n");
}

TEST_CASE("metrics_log: append continues a run and drops a crash's partial line", "[train][metrics]") {
  attnres_test::temp_dir dir;
  const auto path = dir / "metrics.csv";
  {
    metrics_log log(path, {"step", "loss"});
    log.row({1, 3.0});
  }
  {
    std::ofstream crash(path, std::ios::app);
    crash << "2,2.9";  // a row cut short
  }
  {
    metrics_log log(path, {"step", "loss"}, metrics_log::mode::append);
    log.row({2, 2.75});
  }
  CHECK(read_text(path) == "step,loss\n1,3\n2,2.75\n");

  REQUIRE_THROWS_AS(metrics_log(path, {"step", "val_loss"}, metrics_log::mode::append), attnres::io_error);
  REQUIRE_THROWS_WITH(metrics_log(path, {"step", "val_loss"}, metrics_log::mode::append),
                      contains("has columns 'step,loss' but 'step,val_loss' were given"));
  metrics_log fresh(dir / "new.csv", {"a"}, metrics_log::mode::append);  // a missing file starts fresh
  fresh.row({1});
  CHECK(read_text(dir / "new.csv") == "a\n1\n");
  { metrics_log truncated(path, {"x"}); }  // truncate (the default) starts over
  CHECK(read_text(path) == "x\n");
}

TEST_CASE("metrics_log: bad columns and unwritable paths", "[train][metrics]") {
  attnres_test::temp_dir dir;
  REQUIRE_THROWS_AS(metrics_log(dir / "m.csv", {}), attnres::config_error);
  REQUIRE_THROWS_WITH(metrics_log(dir / "m.csv", {"a", "b,c"}), contains("'b,c' contains a comma"));
  REQUIRE_THROWS_WITH(metrics_log(dir / "m.csv", {"a", "a"}), contains("'a' appears twice"));
  REQUIRE_THROWS_WITH(metrics_log(dir / "m.csv", {"a", ""}), contains("empty column name"));
  const auto bad = dir / "no_such_dir" / "m.csv";
  REQUIRE_THROWS_AS(metrics_log(bad, {"a"}), attnres::io_error);
  REQUIRE_THROWS_WITH(metrics_log(bad, {"a"}), contains(bad.string()));
}

TEST_CASE("progress: plain lines every n steps when not a terminal", "[train][metrics]") {
  std::ostringstream out;
  {
    progress p(5, 2, progress::style::automatic, out);  // a string stream is not a terminal
    CHECK_FALSE(p.is_bar());
    for (int step = 1; step <= 5; ++step) p.update(step, 3.0 - 0.25 * step, 12345.0, 7.0 * (5 - step));
  }
  CHECK(out.str() ==
        "step 2/5  loss 2.5000  12.3k tok/s  ETA 0:21\n"
        "step 4/5  loss 2.0000  12.3k tok/s  ETA 0:07\n"
        "step 5/5  loss 1.7500  12.3k tok/s  ETA 0:00\n");
}

TEST_CASE("progress: a bar redrawn in place (carriage return)", "[train][metrics]") {
  std::ostringstream out;
  progress p(100, 10, progress::style::bar, out);
  CHECK(p.is_bar());
  p.update(50, 2.0, 2.5e6, 3725.0);
  CHECK(out.str() == "\r[############------------]  50/100  loss 2.0000  2.50M tok/s  ETA 1:02:05");
  out.str("");
  p.note("validation loss 1.9");
  CHECK(out.str().find("\rvalidation loss 1.9\n") != std::string::npos);
  out.str("");
  p.update(100, 1.5, 950.0, 0.0);
  p.finish();
  p.finish();  // idempotent
  CHECK(out.str() == "\r[########################] 100/100  loss 1.5000  950 tok/s  ETA 0:00\n");
}

TEST_CASE("progress: formats and helpers", "[train][metrics]") {
  CHECK(progress::duration(0.4) == "0:00");
  CHECK(progress::duration(65) == "1:05");
  CHECK(progress::duration(3600 * 25 + 61) == "25:01:01");
  CHECK(progress::duration(std::nan("")) == "--:--");
  CHECK(progress::duration(-1) == "--:--");
  CHECK(progress::rate(999.4) == "999");
  CHECK(progress::rate(12345) == "12.3k");
  CHECK(progress::rate(-1) == "?");
  CHECK(progress::eta(25, 100, 50.0) == 150.0);
  CHECK(std::isnan(progress::eta(0, 100, 1.0)));
  REQUIRE_THROWS_AS(progress(0), attnres::config_error);
  REQUIRE_THROWS_AS(progress(10, 0), attnres::config_error);
}
