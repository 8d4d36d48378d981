#pragma once
// ops/embedding — token embedding lookup.
//
//   out[i,:] = table[tokens[i], :]        tokens (M) in [0, V), table (V,D), out (M,D)
//
// Functions (overloaded on the backend tag; backend::cpu falls back to backend::reference):
//
//   embedding_forward(B, tokens /*(M)*/, M, table /*(V,D)*/, out /*(M,D)*/)
//       ensures: out is overwritten.
//   embedding_backward(B, tokens /*(M)*/, M, dout /*(M,D)*/, dtable /*(V,D)*/)
//       ensures: dtable[tokens[i], :] += dout[i, :] for every i, in order of i (a token that
//       occurs several times collects all its gradients; the result is deterministic).
//
// Errors: every token is checked before anything is written; one outside [0, V) throws
// shape_error "embedding: token <v> at position <i> is outside the vocabulary [0, V)". Views of
// the wrong shape throw shape_error.
// The cpu forward copies rows in parallel; the cpu backward splits D into column blocks, each
// thread walking all tokens in order over its own columns (no atomics, no races, and the same
// summation order as the reference).

#include <attnres/ops/reference/embedding.hpp>
#include <attnres/ops/cpu/embedding.hpp>
