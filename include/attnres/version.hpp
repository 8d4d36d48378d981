#pragma once
// The library version (kept in step with project(VERSION) in CMakeLists.txt).

#define ATTNRES_VERSION_MAJOR 0
#define ATTNRES_VERSION_MINOR 1
#define ATTNRES_VERSION_PATCH 0

namespace attnres {
inline constexpr const char* version_string = "0.1.0";
}
