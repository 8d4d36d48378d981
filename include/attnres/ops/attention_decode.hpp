#pragma once
// ops/attention_decode — one step of KV-cache decoding: causal attention of one new query per
// sequence over the n cached positions [0, n), the last of which (n − 1) is the new token itself.
//
// Per sequence b and head h, with q the new query (Dh), k_j, v_j the cached key and value of
// position j (Dh) and s = 1/√Dh:
//
//   p_j = softmax_j(s · q·k_j)  over j < n ;   out = Σ_j p_j v_j
//
// which is the last row (t = n − 1) of causal_attention_forward over the same n positions; the
// tests check that equality for every n.
//
//   attention_decode(B, q /*(batch, H·Dh)*/, k_cache, v_cache /*(batch, T_max, H·Dh)*/, n, T_max, H,
//                    out /*(batch, H·Dh)*/)
//       overwrites out. The caches are dense row-major: the key of position j of sequence b
//       starts at k_cache + (b·T_max + j)·H·Dh. q and k must already carry RoPE (at position n − 1
//       for q, j for k_j).
//
// Requires (else attnres::shape_error naming the problem): H ≥ 1, q.cols = H·Dh with Dh ≥ 1,
// out the same shape as q, 1 ≤ n ≤ T_max, non-null caches (when batch > 0).
//
//   attention_decode_step(B, x /*(batch, D)*/, wq, wk, wv /*(D, D)*/, q, k, v /*(batch, D)*/,
//                         k_cache, v_cache /*(batch, T_max, D)*/, pos, T_max, H, theta, out /*(batch, D)*/)
//       the attention layer's decode step up to its output projection, for a new token at
//       position pos of each sequence:
//         q, k, v = x W_qᵀ, x W_kᵀ, x W_vᵀ;   q, k ← RoPE(q, k) at position pos (θ = theta);
//         k, v → the caches at position pos;   out = attention_decode(q, caches, n = pos + 1)
//       and q, k, v keep the rotated values. The reference backend runs those ops one after the
//       other; the cpu backend runs each head start to end on one thread (a head needs nothing
//       of the others until the output projection), which takes one parallel loop instead of
//       two. Requires the shapes above, D = H·Dh with Dh even, 0 ≤ pos < T_max, non-null caches
//       and theta > 0 (else shape_error / config_error).

#include <attnres/ops/reference/attention_decode.hpp>
#include <attnres/ops/cpu/attention_decode.hpp>
