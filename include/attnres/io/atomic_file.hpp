#pragma once
// write_file_atomically: replace (or create) a file so that readers, and a crash at any
// moment, see either the old contents or the new — never a half-written file. The bytes go to
// a temporary file in the same directory (rename is only atomic within one file system), which
// is fsync'ed and then renamed over the target. On any failure the temporary file is removed,
// the target is left untouched and io_error is thrown.
//
// As with any rename-based save, a symlink at the target is replaced by a regular file (not
// followed), and the new file gets default permissions (0666 & ~umask), not the old file's.

#include <attnres/core/error.hpp>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace attnres::io {

namespace detail {
// ".tmp.<pid>.<random>": the pid separates processes, the counter separates threads and calls
// in one process, and the random part avoids reusing names left behind by a crashed process.
inline std::string temp_suffix() {
  static std::atomic<std::uint64_t> counter{0};
  std::uint64_t r = counter.fetch_add(1, std::memory_order_relaxed);
  r ^= static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) * 0x9E3779B97F4A7C15ull;
  try {
    std::random_device rd;
    r ^= (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  } catch (...) {
    // No entropy source: the counter and the clock still make a collision unlikely, and
    // O_EXCL plus retrying make one harmless.
  }
  char hex[17];
  for (int i = 15; i >= 0; --i, r >>= 4) hex[i] = "0123456789abcdef"[r & 15];
  hex[16] = '\0';
  return attnres::detail::concat(".tmp.", static_cast<long>(::getpid()), ".", hex);
}
}  // namespace detail

// `kind` names the file type in error messages ("safetensors", "npy", ...).
inline void write_file_atomically(const std::filesystem::path& path, std::span<const std::byte> data,
                                  std::string_view kind = "file") {
  const std::string target = path.string();
  const auto sys_fail = [&](const char* what, int err) {
    throw io_error(attnres::detail::concat(kind, " '", target, "': ", what, ": ", std::generic_category().message(err)));
  };

  std::filesystem::path tmp;
  int fd = -1;
  for (int attempt = 0; attempt < 16 && fd < 0; ++attempt) {
    tmp = path;
    tmp += detail::temp_suffix();
    // O_EXCL: never open (and then delete) a file someone else created under this name.
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST) sys_fail("cannot create temporary file", errno);
  }
  if (fd < 0) sys_fail("cannot create temporary file", EEXIST);

  // From here on, any failure must close fd and remove tmp before throwing.
  const auto abandon = [&](const char* what, int err) {
    if (fd >= 0) ::close(fd);
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    sys_fail(what, err);
  };
  const std::byte* p = data.data();
  std::size_t left = data.size();
  while (left > 0) {
    const ::ssize_t w = ::write(fd, p, left);
    if (w < 0) {
      if (errno == EINTR) continue;
      abandon("cannot write temporary file", errno);
    }
    p += w;
    left -= static_cast<std::size_t>(w);
  }
  // fsync before rename: otherwise a crash could leave the new name pointing at a file whose
  // data never reached the disk.
  while (::fsync(fd) != 0)
    if (errno != EINTR) abandon("cannot fsync temporary file", errno);
  const int fd_to_close = fd;
  fd = -1;
  if (::close(fd_to_close) != 0 && errno != EINTR) abandon("cannot close temporary file", errno);

  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) abandon("cannot rename temporary file over the target", ec.value());

  // Persist the directory entry too. Best effort: the new file is already in place, and some
  // file systems do not support fsync on directories.
  std::filesystem::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
}

inline void write_file_atomically(const std::filesystem::path& path, std::string_view text,
                                  std::string_view kind = "file") {
  write_file_atomically(path, std::as_bytes(std::span<const char>(text.data(), text.size())), kind);
}

}  // namespace attnres::io
