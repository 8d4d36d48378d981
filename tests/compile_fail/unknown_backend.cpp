// A backend tag without backend_traits is not a Backend: using it fails at compile time
// instead of silently falling back to some other implementation.
#include <attnres/core/backend.hpp>

struct my_gpu {
  static constexpr const char* name = "my_gpu";
};

#ifdef ATTNRES_CF_CONTROL
template <>
struct attnres::backend_traits<my_gpu> {
  using memory_space = attnres::device_space;
};
#endif

int main() {
  using space = attnres::backend_traits<my_gpu>::memory_space;
  static_assert(attnres::Backend<my_gpu>);
  return sizeof(space) == 1 ? 0 : 1;
}
