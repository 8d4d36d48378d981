#pragma once
// Enforces the call order of the residual policy contract (residual/residual_policy.hpp), so a
// misordered stack loop fails with a message instead of silently mixing the wrong sources.

#include <attnres/core/error.hpp>

#include <string>

namespace attnres::detail {

class call_sequence {
 public:
  void begin(std::string_view who, int n_sublayers, bool keep_for_backward) {
    if (who_ != who) who_ = who;
    L_ = n_sublayers;
    keep_ = keep_for_backward;
    gathered_ = 0;
    pushed_ = 0;
    forward_done_ = false;
    backward_active_ = false;
  }

  void gather(int l) {
    expects<usage_error>(L_ > 0 && l >= 1 && l <= L_ + 1, who_, ": gather(", l, ") is out of range 1..", L_ + 1,
                         L_ > 0 ? "" : " (call begin() first)");
    if (forward_done_ || l != gathered_ + 1 || pushed_ != l - 1)  // the message is built only here
      throw usage_error(concat(who_, ": gather(", l, ") called out of order; expected ",
                               pushed_ == gathered_ ? "gather(" + std::to_string(gathered_ + 1) + ")"
                                                    : "push(" + std::to_string(gathered_) + ")"));
    gathered_ = l;
    forward_done_ = l == L_ + 1;
  }

  void push(int l) {
    expects<usage_error>(l >= 1 && l <= L_, who_, ": push(", l, ") is out of range 1..", L_);
    expects<usage_error>(gathered_ == l && pushed_ == l - 1, who_, ": push(", l,
                         ") called out of order; the last gather point was ", gathered_, " and the last push ",
                         pushed_);
    pushed_ = l;
  }

  void begin_backward() {
    expects<usage_error>(forward_done_, who_, ": begin_backward() needs a complete forward pass (gather(", L_ + 1,
                         ") has not run)");
    expects<usage_error>(keep_, who_,
                         ": begin_backward() after a forward pass run with keep_for_backward = false");
    backward_active_ = true;
    expect_gather_ = true;
    next_ = L_ + 1;
  }

  void gather_backward(int l) {
    if (!(backward_active_ && expect_gather_ && l == next_))
      throw usage_error(concat(who_, ": gather_backward(", l, ") called out of order; expected ", expected()));
    expect_gather_ = false;
    next_ = l - 1;
  }

  void source_grad(int l) {
    if (!(backward_active_ && !expect_gather_ && l == next_))
      throw usage_error(concat(who_, ": source_grad(", l, ") called out of order; expected ", expected()));
    expect_gather_ = true;
    next_ = l;
    if (l == 0) backward_active_ = false;
  }

  bool keep_for_backward() const { return keep_; }

 private:
  std::string expected() const {
    if (!backward_active_) return "begin_backward() first";
    return (expect_gather_ ? "gather_backward(" : "source_grad(") + std::to_string(next_) + ")";
  }
  std::string who_;
  int L_ = 0;
  bool keep_ = false;
  int gathered_ = 0, pushed_ = 0;
  bool forward_done_ = false;
  bool backward_active_ = false;
  bool expect_gather_ = true;
  int next_ = 0;
};

}  // namespace attnres::detail
