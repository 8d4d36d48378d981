#!/usr/bin/python3
"""PyTorch reference for attnres' three residual policies; writes golden files.

Run by hand from the repository root (never by the build):

    /usr/bin/python3 tests/golden/make_golden.py

It writes tests/golden/data/*.safetensors (float64 only) and is bit-for-bit
reproducible: fixed seed per config, one thread, float64 everywhere and a
deterministic safetensors writer (sorted JSON keys, sorted tensor layout).
The math follows /work/shared/docs/attnres-paper.md sections 1, 2.4, 3 and 11.

Model (per token; a token is one (b, t) position; shapes [B, T, D]):
  v_0 = x0 (embedding); v_l = f_l(h_l) = tanh(h_l @ W_l) for l = 1..L.
  Gather point l (1..L) produces h_l, point L+1 produces h_out = h.{L+1}.
  loss = sum(h_out * R).
  sum   : h_l = x0 + sum_{i<l} v_i.
  full  : h_l = sum_j alpha_j V_j over V = [v_0 .. v_{l-1}],
          s_j = sum_d w_l[d] g_l[d] V_j[d] / sqrt(mean_d V_j^2 + eps), alpha = softmax_j(s).
  block : canonical algorithm of paper section 2.4 with S = L / N.
"""

import json
import math
import pathlib
import struct
import sys

import numpy as np
import torch

EPS = 1e-6
DTYPE = torch.float64
GENERATOR = "tests/golden/make_golden.py"
DATA_DIR = pathlib.Path(__file__).resolve().parent / "data"

torch.set_num_threads(1)
torch.set_default_dtype(DTYPE)
torch.use_deterministic_algorithms(True)


# --------------------------------------------------------------------------
# Configurations. Configs with the same (L, B, T, D) share the same seed and
# hence bit-identical inputs and parameters (x0, W.*, R, query, key_gain), so
# files can be compared with each other (e.g. block_L4_N4 == full_L4).
# --------------------------------------------------------------------------
DEFAULT_SHAPE = (2, 3, 5)  # B, T, D (D odd: not a SIMD multiple)

CONFIGS = [
    # (policy, L, N, (B, T, D))   N: blocks for "block", ignored otherwise
    ("sum", 4, None, DEFAULT_SHAPE),
    ("full", 4, None, DEFAULT_SHAPE),
    ("block", 4, 2, DEFAULT_SHAPE),
    ("block", 4, 1, DEFAULT_SHAPE),
    ("block", 4, 4, DEFAULT_SHAPE),  # S = 1: must equal full L=4
    ("block", 6, 2, DEFAULT_SHAPE),  # S = 3: block 2 starts at sublayer 4 (an MLP)
    ("block", 6, 3, DEFAULT_SHAPE),  # S = 2
    ("full", 3, None, (1, 1, 7)),
]


def seed_for(L, B, T, D):
    """Seed depends only on the shapes, never on the policy."""
    return 20260316 + 1000 * L + 100 * B + 10 * T + D


def file_name(policy, L, N, shape):
    name = f"{policy}_L{L}"
    if policy == "block":
        name += f"_N{N}"
    if tuple(shape) != DEFAULT_SHAPE:
        B, T, D = shape
        name += f"_B{B}T{T}D{D}"
    return name + ".safetensors"


def make_inputs(L, B, T, D, seed):
    """Draw every input in a fixed order, whatever the policy."""
    torch.manual_seed(seed)
    x0 = torch.randn(B, T, D, dtype=DTYPE)
    Ws = [torch.randn(D, D, dtype=DTYPE) / math.sqrt(D) for _ in range(L)]
    R = torch.randn(B, T, D, dtype=DTYPE)
    query = 0.5 * torch.randn(L + 1, D, dtype=DTYPE)
    key_gain = 1.0 + 0.2 * torch.randn(L + 1, D, dtype=DTYPE)
    return dict(x0=x0, Ws=Ws, R=R, query=query, key_gain=key_gain)


# --------------------------------------------------------------------------
# The reference model.
# --------------------------------------------------------------------------
def sublayer(h, W):
    """f_l(h) = tanh(h @ W): v[b,t,:] = tanh(sum_k h[b,t,k] W[k,:])."""
    return torch.tanh(h @ W)


def aggregate(sources, w, g, eps=EPS):
    """One AttnRes gather point. sources: list of [B,T,D]; w, g: [D].

    Returns h [B,T,D] and alpha [n_src, B, T]."""
    V = torch.stack(sources, dim=0)                          # [n, B, T, D]
    r = torch.sqrt((V * V).mean(dim=-1, keepdim=True) + eps)  # [n, B, T, 1]
    s = (w * g * V / r).sum(dim=-1)                          # [n, B, T]
    alpha = torch.softmax(s, dim=0)                          # over sources
    h = (alpha.unsqueeze(-1) * V).sum(dim=0)                 # [B, T, D]
    return h, alpha


def forward(policy, L, N, x0, Ws, query, key_gain, R, eps=EPS, keep_sources=False):
    """Runs one policy. Returns dict with lists hs (L+1), vs (L), alphas
    (L+1, None for sum), srcs (L+1 source lists if keep_sources) and loss."""
    hs, vs, alphas, srcs = [], [], [], []

    if policy == "sum":
        for l in range(1, L + 1):
            h = x0.clone()                  # a distinct node: grad.h.1 is only the f_1 path
            for v in vs:
                h = h + v
            hs.append(h)
            alphas.append(None)
            vs.append(sublayer(h, Ws[l - 1]))
        h = x0.clone()
        for v in vs:
            h = h + v
        hs.append(h)
        alphas.append(None)

    elif policy == "full":
        for l in range(1, L + 1):
            V = [x0] + vs
            h, a = aggregate(V, query[l - 1], key_gain[l - 1], eps)
            hs.append(h)
            alphas.append(a)
            srcs.append(V)
            vs.append(sublayer(h, Ws[l - 1]))
        V = [x0] + vs
        h, a = aggregate(V, query[L], key_gain[L], eps)
        hs.append(h)
        alphas.append(a)
        srcs.append(V)

    elif policy == "block":
        if N is None or N < 1 or L % N != 0:
            raise ValueError(f"block policy: N={N} blocks does not divide L={L} sublayers")
        S = L // N
        blocks = [x0]
        partial = None
        for l in range(1, L + 1):
            i = (l - 1) % S
            if i == 0 and partial is not None:
                blocks.append(partial)
                partial = None
            V = blocks + ([partial] if partial is not None else [])
            h, a = aggregate(V, query[l - 1], key_gain[l - 1], eps)
            hs.append(h)
            alphas.append(a)
            srcs.append(V)
            y = sublayer(h, Ws[l - 1])
            vs.append(y)
            partial = y if partial is None else partial + y
        blocks.append(partial)
        assert len(blocks) == N + 1
        h, a = aggregate(blocks, query[L], key_gain[L], eps)
        hs.append(h)
        alphas.append(a)
        srcs.append(list(blocks))

    else:
        raise ValueError(f"unknown policy {policy!r}")

    loss = (hs[-1] * R).sum()
    return dict(hs=hs, vs=vs, alphas=alphas, srcs=srcs if keep_sources else None, loss=loss)


def expected_n_sources(policy, L, N, l):
    """Number of sources at gather point l (1..L+1)."""
    if policy == "full":
        return l
    S = L // N
    if l == L + 1:
        return N + 1
    return 1 + (l - 1) // S + (1 if (l - 1) % S else 0)


# --------------------------------------------------------------------------
# Running one configuration.
# --------------------------------------------------------------------------
def run_config(policy, L, N, shape):
    B, T, D = shape
    seed = seed_for(L, B, T, D)
    inp = make_inputs(L, B, T, D, seed)
    has_attn = policy != "sum"

    x0 = inp["x0"].clone().requires_grad_(True)
    Ws = [W.clone().requires_grad_(True) for W in inp["Ws"]]
    query = inp["query"].clone().requires_grad_(has_attn)
    key_gain = inp["key_gain"].clone().requires_grad_(has_attn)
    R = inp["R"]

    out = forward(policy, L, N, x0, Ws, query, key_gain, R, keep_sources=True)
    for t in out["hs"] + out["vs"]:
        t.retain_grad()
    out["loss"].backward()

    n_blocks = 0 if policy == "sum" else (L if policy == "full" else N)
    tensors = {}
    tensors["x0"] = inp["x0"]
    tensors["R"] = inp["R"]
    for l in range(1, L + 1):
        tensors[f"W.{l}"] = inp["Ws"][l - 1]
        tensors[f"v.{l}"] = out["vs"][l - 1].detach()
        tensors[f"grad.v.{l}"] = out["vs"][l - 1].grad
        tensors[f"grad.W.{l}"] = Ws[l - 1].grad
    for l in range(1, L + 2):
        tensors[f"h.{l}"] = out["hs"][l - 1].detach()
        tensors[f"grad.h.{l}"] = out["hs"][l - 1].grad
    tensors["loss"] = out["loss"].detach().reshape(1)
    tensors["grad.x0"] = x0.grad
    if has_attn:
        tensors["query"] = inp["query"]
        tensors["key_gain"] = inp["key_gain"]
        tensors["grad.query"] = query.grad
        tensors["grad.key_gain"] = key_gain.grad
        for l in range(1, L + 2):
            a = out["alphas"][l - 1].detach()
            tensors[f"alpha.{l}"] = a.reshape(a.shape[0], B * T)  # column = b*T + t

    # ---- per-config self-checks ----
    for name, t in tensors.items():
        assert t is not None, f"{name} has no value (gradient missing?)"
        assert t.dtype == DTYPE, name
        assert torch.isfinite(t).all(), name
    assert torch.equal(tensors["h.1"], inp["x0"]), "first sublayer input must equal x0"
    if has_attn:
        for l in range(1, L + 2):
            a = tensors[f"alpha.{l}"]
            assert a.shape == (expected_n_sources(policy, L, N, l), B * T), (l, a.shape)
            assert torch.allclose(a.sum(0), torch.ones(B * T), rtol=0, atol=1e-14), l
            assert (a > 0).all()
        check_closed_form_grads(out, tensors, L)
    else:
        # sum: h_l is the plain residual stream
        acc = inp["x0"].clone()
        for l in range(1, L + 2):
            assert torch.allclose(tensors[f"h.{l}"], acc, rtol=0, atol=1e-14)
            if l <= L:
                acc = acc + tensors[f"v.{l}"]
    # grad.h.{L+1} = R (the output feeds only the loss)
    assert torch.equal(tensors[f"grad.h.{L + 1}"], R)

    meta = {
        "policy": policy,
        "L": str(L),
        "N": str(n_blocks),
        "B": str(B),
        "T": str(T),
        "D": str(D),
        "eps": repr(EPS),
        "seed": str(seed),
        "sublayer": "tanh(h @ W)",
        "generator": GENERATOR,
        "torch": torch.__version__,
    }
    return tensors, meta


def check_closed_form_grads(out, tensors, L):
    """Paper section 2.4 (derived) backward of one aggregation vs autograd:
    dL/ds_j = alpha_j (G.V_j - G.h); dL/dw = sum_j dL/ds_j g*u_j; dL/dg = sum_j dL/ds_j w*u_j."""
    q, kg = tensors["query"], tensors["key_gain"]
    for l in range(1, L + 2):
        V = torch.stack([v.detach() for v in out["srcs"][l - 1]], 0)   # [n,B,T,D]
        G = tensors[f"grad.h.{l}"]
        h = tensors[f"h.{l}"]
        a = out["alphas"][l - 1].detach()                               # [n,B,T]
        r = torch.sqrt((V * V).mean(-1, keepdim=True) + EPS)
        u = V / r
        ds = a * ((G * V).sum(-1) - (G * h).sum(-1))                    # [n,B,T]
        dw = (ds.unsqueeze(-1) * kg[l - 1] * u).sum((0, 1, 2))
        dg = (ds.unsqueeze(-1) * q[l - 1] * u).sum((0, 1, 2))
        assert torch.allclose(dw, tensors["grad.query"][l - 1], rtol=1e-10, atol=1e-12), l
        assert torch.allclose(dg, tensors["grad.key_gain"][l - 1], rtol=1e-10, atol=1e-12), l


# --------------------------------------------------------------------------
# Global self-checks.
# --------------------------------------------------------------------------
def global_checks(results):
    # Block N = L (S = 1) is Full AttnRes: identical inputs -> identical outputs.
    full, _ = results[file_name("full", 4, None, DEFAULT_SHAPE)]
    blk, _ = results[file_name("block", 4, 4, DEFAULT_SHAPE)]
    assert full.keys() == blk.keys()
    for k in full:
        assert torch.equal(full[k], blk[k]), f"block N=4 L=4 != full L=4 at {k}"

    # All L=4 default-shape configs share their inputs.
    for name in ("sum_L4", "block_L4_N2", "block_L4_N1"):
        other, _ = results[name + ".safetensors"]
        for k in ("x0", "R", "W.1", "W.4"):
            assert torch.equal(other[k], full[k]), (name, k)

    # Non-divisible N is refused.
    inp = make_inputs(4, 1, 1, 3, 1)
    try:
        forward("block", 4, 3, inp["x0"], inp["Ws"], inp["query"], inp["key_gain"], inp["R"])
    except ValueError:
        pass
    else:
        raise AssertionError("block L=4 N=3 must be refused")

    # Zero queries give uniform alpha (and full == mean of sources, paper 1.3).
    for policy, L, N in (("full", 4, None), ("block", 4, 2), ("block", 6, 3), ("block", 4, 1)):
        inp = make_inputs(L, 2, 3, 5, 7)
        zq = torch.zeros_like(inp["query"])
        o = forward(policy, L, N, inp["x0"], inp["Ws"], zq, inp["key_gain"], inp["R"], keep_sources=True)
        for l, a in enumerate(o["alphas"], start=1):
            n = a.shape[0]
            assert n == expected_n_sources(policy, L, N, l)
            assert torch.allclose(a, torch.full_like(a, 1.0 / n), rtol=0, atol=1e-15), (policy, l)
            mean = torch.stack(o["srcs"][l - 1], 0).mean(0)
            assert torch.allclose(o["hs"][l - 1], mean, rtol=0, atol=1e-14), (policy, l)

    # The 48B check (paper 11.6): L = 54, N = 9 -> 10 sources at the output.
    assert expected_n_sources("block", 54, 9, 55) == 10

    # gradcheck on one small config, full and block, in double.
    L, B, T, D = 4, 1, 2, 3
    inp = make_inputs(L, B, T, D, 11)
    R = inp["R"]

    def make_fn(policy, N):
        def fn(x0, query, key_gain, *Ws):
            return forward(policy, L, N, x0, list(Ws), query, key_gain, R)["hs"][-1]
        return fn

    args = [inp["x0"], inp["query"], inp["key_gain"]] + inp["Ws"]
    args = tuple(a.clone().requires_grad_(True) for a in args)
    for policy, N in (("full", None), ("block", 2), ("block", 1)):
        assert torch.autograd.gradcheck(make_fn(policy, N), args, eps=1e-6, atol=1e-7, rtol=1e-6), policy


# --------------------------------------------------------------------------
# safetensors writer / reader (no dependency on the safetensors package).
# --------------------------------------------------------------------------
def safetensors_bytes(tensors, metadata):
    header = {"__metadata__": {str(k): str(v) for k, v in metadata.items()}}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name].detach().cpu().numpy().astype("<f8"))
        raw = arr.tobytes(order="C")
        header[name] = {"dtype": "F64", "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    hjson = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("utf-8")
    hjson += b" " * ((-len(hjson)) % 8)
    return struct.pack("<Q", len(hjson)) + hjson + b"".join(blobs)


def read_safetensors(data):
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__")
    body = data[8 + n:]
    out = {}
    for name, info in header.items():
        assert info["dtype"] == "F64"
        b, e = info["data_offsets"]
        out[name] = np.frombuffer(body[b:e], dtype="<f8").reshape(info["shape"])
    return out, meta


# --------------------------------------------------------------------------
def main():
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    results = {}
    for policy, L, N, shape in CONFIGS:
        name = file_name(policy, L, N, shape)
        results[name] = run_config(policy, L, N, shape)
    global_checks(results)

    for name, (tensors, meta) in results.items():
        data = safetensors_bytes(tensors, meta)
        back, bmeta = read_safetensors(data)
        assert bmeta == meta and back.keys() == tensors.keys()
        for k, t in tensors.items():
            assert np.array_equal(back[k], t.numpy()), (name, k)
        assert len(data) < 50_000, (name, len(data))
        (DATA_DIR / name).write_bytes(data)
        print(f"wrote {DATA_DIR.relative_to(DATA_DIR.parent.parent.parent) / name}  "
              f"({len(data)} bytes, {len(tensors)} tensors, loss={tensors['loss'].item():.17g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
