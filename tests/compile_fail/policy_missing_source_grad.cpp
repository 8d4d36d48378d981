// A residual policy that lacks part of the contract (here source_grad) is not a
// ResidualPolicy, and the library's stack drivers refuse it at compile time.
#include <attnres/residual/residual_policy.hpp>
#include <attnres/testing/toy_stack.hpp>

struct Incomplete {
  static constexpr std::string_view name = "incomplete";
  template <class T, class Backend>
  struct with {
    using scalar = T;
    using backend = Backend;
    struct Params {};
    struct Grads {};
    struct Cache {};
    explicit with(attnres::residual_config c) : cfg(c) {}
    attnres::residual_config cfg;
    const attnres::residual_config& config() const { return cfg; }
    int n_sublayers() const { return cfg.n_sublayers; }
    attnres::index_t n_sources(int) const { return 1; }
    Params init_params() const { return {}; }
    Grads zero_grads() const { return {}; }
    void begin(Cache&, attnres::const_matrix_view<T>, bool) const {}
    void gather(const Params&, Cache&, int, attnres::matrix_view<T>) const {}
    void push(Cache&, int, attnres::const_matrix_view<T>) const {}
    void begin_backward(Cache&) const {}
    void gather_backward(const Params&, Cache&, int, attnres::const_matrix_view<T>, Grads&) const {}
#ifdef ATTNRES_CF_CONTROL
    void source_grad(Cache&, int, attnres::matrix_view<T>) const {}
#endif
    attnres::const_matrix_view<T> depth_weights(const Cache&, int) const { return {}; }
  };
};

static_assert(attnres::ResidualPolicy<Incomplete> || true);  // the concept itself is usable either way

int main() {
  attnres::testing::toy_stack<Incomplete::with<double, attnres::backend::reference>> stack({.n_sublayers = 2, .d_model = 4}, 1);
  return stack.L();
}
