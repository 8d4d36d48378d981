#pragma once
// Memory spaces are tag types: a view's memory space is part of its type, so a host view
// cannot be handed to an op that needs device memory (and vice versa) without a compile error.

namespace attnres {

struct host_space {
  static constexpr const char* name = "host";
};

struct device_space {
  static constexpr const char* name = "device";
};

}  // namespace attnres
