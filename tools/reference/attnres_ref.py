#!/usr/bin/python3
"""attnres_ref: the PyTorch reference model of attnres (a transformer LM whose residual is a policy).

Follows /work/shared/docs/DESIGN.md ("Interoperability contract") and attnres-paper.md §1–3, §11.
Usable as a library (PyTorch users, golden generators, benchmarks) and as a self-test:

    /usr/bin/python3 tools/reference/attnres_ref.py --self-test

Library use:

    import sys; sys.path.insert(0, "tools/reference")
    from attnres_ref import Config, AttnResLM, save_safetensors, load_safetensors
    model = AttnResLM(Config(vocab=256, d_model=256, n_heads=4, n_layers=8, d_ff=704,
                             residual="block", blocks=4))
    logits = model(tokens)                       # tokens: int64 [B,T] -> [B,T,V]
    loss = model.loss(tokens, targets)           # mean cross-entropy over B*T tokens
    save_safetensors(model, "model.safetensors") # float32, DESIGN names, config in __metadata__
    model2 = load_safetensors("model.safetensors")

Architecture (per token; shapes [B,T,D]; L = 2·n_layers sublayers, 1-based):
  x0 = tok_embeddings(tokens)                                  source v_0 (b_0)
  sublayer 2i+1: v = attn(attn_norm(h))   (transformer layer i, 0-based)
  sublayer 2i+2: v = mlp(mlp_norm(h))
  gather point l (1..L) produces h_l, the input of sublayer l; point L+1 produces h_out;
  logits = lm_head(norm(h_out))   (lm_head.weight, or tok_embeddings.weight when tied)
  sum  : h_l = x0 + Σ_{i<l} v_i (a running stream), h_out = x0 + Σ v_i
  full : h_l = Σ_j α_j V_j over V = [v_0 .. v_{l-1}], output over [v_0 .. v_L]
  block: N blocks of S = L/N sublayers; V = [b_0 = x0, completed block sums ...] + [partial sum of
         the current block, only when non-empty]; output over [b_0 .. b_N]
  α_j = softmax_j( query · key_norm(V_j) ), key_norm(V) = weight ⊙ V / sqrt(mean_d(V²) + norm_eps)
        (always an RMSNorm with gain, whatever `norm` is; no 1/sqrt(d), no temperature)
  gather point 2i+1 uses layers.{i}.attn_res, 2i+2 uses layers.{i}.mlp_res, L+1 uses out_res.

Conventions decided here (documented once, followed by the generators):
  * RoPE tables (inv_freq_j = θ^(-2j/Dh), angle = pos·inv_freq_j, positions 0..T-1) are computed in
    float64 and then cast to the compute dtype. Head h uses rows h·Dh..(h+1)·Dh-1 of wq/wk/wv and
    columns h·Dh..(h+1)·Dh-1 of wo. scores = (q @ kᵀ) · (1/sqrt(Dh)), causal mask, softmax over keys.
  * LayerNorm variant: torch.nn.functional.layer_norm (biased variance) with weight and bias for
    attn_norm, mlp_norm and the final norm; the AttnRes key norms stay RMSNorm (gain only).
  * Tied embeddings: the head is tok_embeddings.weight; lm_head.weight does not exist.
  * Config.blocks: 0 for sum, L = 2·n_layers for full, N for block; None resolves to 0 / L / 4.
  * Float metadata values are Python repr() (shortest round-trip): "1e-06", "10000.0".
"""

import argparse
import dataclasses
import json
import math
import os
import struct
import sys
from typing import List, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

RESIDUALS = ("sum", "full", "block")
MLPS = ("swiglu", "gelu")
NORMS = ("rmsnorm", "layernorm")
DEFAULT_BLOCKS = 4  # DESIGN.md default size: Block N = 4
CONFIG_KEYS = ("vocab", "d_model", "n_heads", "n_layers", "d_ff", "norm_eps", "rope_theta",
               "residual", "blocks", "tie_embeddings", "mlp", "norm")


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Config:
    vocab: int = 256
    d_model: int = 256
    n_heads: int = 4
    n_layers: int = 8
    d_ff: int = 704
    norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    residual: str = "block"          # "sum" | "full" | "block"
    blocks: Optional[int] = None     # N; sum -> 0, full -> L; None resolves to 0 / L / 4
    tie_embeddings: bool = False
    mlp: str = "swiglu"              # "swiglu" | "gelu"
    norm: str = "rmsnorm"            # "rmsnorm" | "layernorm"

    def __post_init__(self):
        for k in ("vocab", "d_model", "n_heads", "n_layers", "d_ff"):
            v = getattr(self, k)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"Config.{k} must be a positive int, got {v!r}")
        self.norm_eps = float(self.norm_eps)
        self.rope_theta = float(self.rope_theta)
        if not self.norm_eps > 0:
            raise ValueError(f"Config.norm_eps must be > 0, got {self.norm_eps}")
        if not self.rope_theta > 0:
            raise ValueError(f"Config.rope_theta must be > 0, got {self.rope_theta}")
        if self.residual not in RESIDUALS:
            raise ValueError(f"Config.residual must be one of {RESIDUALS}, got {self.residual!r}")
        if self.mlp not in MLPS:
            raise ValueError(f"Config.mlp must be one of {MLPS}, got {self.mlp!r}")
        if self.norm not in NORMS:
            raise ValueError(f"Config.norm must be one of {NORMS}, got {self.norm!r}")
        if self.d_model % self.n_heads != 0:
            raise ValueError(f"d_model={self.d_model} is not a multiple of n_heads={self.n_heads}")
        if (self.d_model // self.n_heads) % 2 != 0:
            raise ValueError(f"head dim {self.d_model // self.n_heads} must be even for RoPE")
        self.tie_embeddings = bool(self.tie_embeddings)
        L = self.n_sublayers
        if self.blocks is None:
            self.blocks = {"sum": 0, "full": L, "block": DEFAULT_BLOCKS}[self.residual]
        N = self.blocks
        if self.residual == "sum" and N != 0:
            raise ValueError(f"residual 'sum' needs blocks = 0, got {N}")
        if self.residual == "full" and N != L:
            raise ValueError(f"residual 'full' needs blocks = L = {L} sublayers, got {N}")
        if self.residual == "block" and (N < 1 or L % N != 0):
            raise ValueError(f"block residual: N={N} blocks does not divide L={L} sublayers")

    @property
    def n_sublayers(self) -> int:
        return 2 * self.n_layers

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def metadata(self) -> dict:
        """The safetensors __metadata__ (every value a string)."""
        out = {}
        for k in CONFIG_KEYS:
            v = getattr(self, k)
            if isinstance(v, bool):
                out[k] = "true" if v else "false"
            elif isinstance(v, float):
                out[k] = repr(v)
            else:
                out[k] = str(v)
        return out

    @staticmethod
    def from_metadata(meta: dict) -> "Config":
        def need(k):
            if k not in meta:
                raise ValueError(f"safetensors metadata has no key '{k}'")
            return meta[k]

        tie = need("tie_embeddings")
        if tie not in ("true", "false"):
            raise ValueError(f"tie_embeddings must be 'true' or 'false', got {tie!r}")
        return Config(vocab=int(need("vocab")), d_model=int(need("d_model")),
                      n_heads=int(need("n_heads")), n_layers=int(need("n_layers")),
                      d_ff=int(need("d_ff")), norm_eps=float(need("norm_eps")),
                      rope_theta=float(need("rope_theta")), residual=need("residual"),
                      blocks=int(meta["blocks"]) if "blocks" in meta else None,
                      tie_embeddings=(tie == "true"), mlp=meta.get("mlp", "swiglu"),
                      norm=meta.get("norm", "rmsnorm"))


def n_sources(residual: str, L: int, N: int, l: int) -> int:
    """Number of sources at gather point l (1..L+1); 1 for sum (the stream)."""
    if residual == "sum":
        return 1
    if residual == "full":
        return l
    S = L // N
    if l == L + 1:
        return N + 1
    return 1 + (l - 1) // S + (1 if (l - 1) % S else 0)


# --------------------------------------------------------------------------------------------
# Modules
# --------------------------------------------------------------------------------------------
class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x²) + eps) · weight."""

    def __init__(self, d, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + self.eps) * self.weight


class LayerNorm(nn.Module):
    """torch layer_norm over the last dim with weight and bias."""

    def __init__(self, d, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))
        self.bias = nn.Parameter(torch.zeros(d))

    def forward(self, x):
        return F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, self.eps)


def make_norm(cfg, d):
    return RMSNorm(d, cfg.norm_eps) if cfg.norm == "rmsnorm" else LayerNorm(d, cfg.norm_eps)


def rope_tables(T, head_dim, theta, dtype, device=None):
    """cos, sin [T, head_dim/2]; computed in float64, then cast to dtype."""
    half = head_dim // 2
    inv_freq = torch.tensor([theta ** (-(2.0 * j) / head_dim) for j in range(half)], dtype=torch.float64)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv_freq[None, :]  # [T, half]
    return torch.cos(ang).to(dtype=dtype, device=device), torch.sin(ang).to(dtype=dtype, device=device)


def apply_rope(x, cos, sin):
    """x [B,H,T,Dh], non-interleaved rotate-half:
    out[j] = x[j] cos - x[j+Dh/2] sin ; out[j+Dh/2] = x[j+Dh/2] cos + x[j] sin."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        D = cfg.d_model
        self.n_heads = cfg.n_heads
        self.wq = nn.Linear(D, D, bias=False)
        self.wk = nn.Linear(D, D, bias=False)
        self.wv = nn.Linear(D, D, bias=False)
        self.wo = nn.Linear(D, D, bias=False)

    def forward(self, x, cos, sin):
        B, T, D = x.shape
        H = self.n_heads
        Dh = D // H
        q = self.wq(x).view(B, T, H, Dh).transpose(1, 2)  # [B,H,T,Dh]
        k = self.wk(x).view(B, T, H, Dh).transpose(1, 2)
        v = self.wv(x).view(B, T, H, Dh).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        scores = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(Dh))  # [B,H,T,T]
        mask = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
        p = torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-1)
        o = (p @ v).transpose(1, 2).reshape(B, T, D)
        return self.wo(o)


class MLP(nn.Module):
    """swiglu: w_down(silu(w_gate x) ⊙ w_up x);  gelu: w_down(gelu_erf(w_up x))."""

    def __init__(self, cfg):
        super().__init__()
        D, Fh = cfg.d_model, cfg.d_ff
        self.kind = cfg.mlp
        if self.kind == "swiglu":
            self.w_gate = nn.Linear(D, Fh, bias=False)
        self.w_up = nn.Linear(D, Fh, bias=False)
        self.w_down = nn.Linear(Fh, D, bias=False)

    def forward(self, x):
        if self.kind == "swiglu":
            return self.w_down(F.silu(self.w_gate(x)) * self.w_up(x))
        return self.w_down(F.gelu(self.w_up(x)))


class AttnRes(nn.Module):
    """One AttnRes gather point: pseudo-query `query` [D] and key norm `key_norm.weight` [D]."""

    def __init__(self, cfg):
        super().__init__()
        self.query = nn.Parameter(torch.zeros(cfg.d_model))
        self.key_norm = RMSNorm(cfg.d_model, cfg.norm_eps)

    def forward(self, sources: List[torch.Tensor]):
        """sources: list of [B,T,D]. Returns h [B,T,D] and alpha [n_src,B,T]."""
        V = torch.stack(sources, dim=0)                    # [n,B,T,D]
        s = (self.key_norm(V) * self.query).sum(dim=-1)    # [n,B,T]
        alpha = torch.softmax(s, dim=0)                    # over sources, per token
        h = (alpha.unsqueeze(-1) * V).sum(dim=0)           # [B,T,D]
        return h, alpha


class TransformerLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.attn_norm = make_norm(cfg, cfg.d_model)
        self.attn = Attention(cfg)
        self.mlp_norm = make_norm(cfg, cfg.d_model)
        self.mlp = MLP(cfg)
        if cfg.residual != "sum":
            self.attn_res = AttnRes(cfg)
            self.mlp_res = AttnRes(cfg)


class AttnResLM(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.tok_embeddings = nn.Embedding(cfg.vocab, cfg.d_model)
        self.layers = nn.ModuleList([TransformerLayer(cfg) for _ in range(cfg.n_layers)])
        if cfg.residual != "sum":
            self.out_res = AttnRes(cfg)
        self.norm = make_norm(cfg, cfg.d_model)
        if not cfg.tie_embeddings:
            self.lm_head = nn.Linear(cfg.d_model, cfg.vocab, bias=False)
        self.reset_parameters()

    # ---- initialisation: linears/embeddings N(0, 0.02), norm gains 1 (biases 0), queries 0 ----
    @torch.no_grad()
    def reset_parameters(self):
        for name, p in self.named_parameters():
            if name.endswith(".query"):
                p.zero_()
            elif name.endswith(".bias"):
                p.zero_()
            elif p.dim() == 1:  # norm and key-norm gains
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.02)

    # ---- structure ----
    def gather_module(self, l):
        """The AttnRes module of gather point l (1..L+1)."""
        L = self.cfg.n_sublayers
        if l == L + 1:
            return self.out_res
        i = (l - 1) // 2
        return self.layers[i].attn_res if l % 2 == 1 else self.layers[i].mlp_res

    def sublayer(self, l, h, cos, sin):
        """f_l(h), l = 1..L (includes the sublayer's own pre-norm)."""
        layer = self.layers[(l - 1) // 2]
        if l % 2 == 1:
            return layer.attn(layer.attn_norm(h), cos, sin)
        return layer.mlp(layer.mlp_norm(h))

    def head_weight(self):
        return self.tok_embeddings.weight if self.cfg.tie_embeddings else self.lm_head.weight

    # ---- forward ----
    def forward(self, tokens, return_alphas=False):
        """tokens: int64 [B,T] -> logits [B,T,V]. With return_alphas, also the list of the L+1
        depth weights α [n_src(l),B,T] (None for sum)."""
        cfg = self.cfg
        L = cfg.n_sublayers
        x0 = self.tok_embeddings(tokens)  # [B,T,D]
        T = tokens.shape[1]
        cos, sin = rope_tables(T, cfg.head_dim, cfg.rope_theta, x0.dtype, x0.device)
        alphas = []

        if cfg.residual == "sum":
            h = x0
            for l in range(1, L + 1):
                alphas.append(None)
                h = h + self.sublayer(l, h, cos, sin)
            alphas.append(None)
            h_out = h

        elif cfg.residual == "full":
            vs = [x0]
            for l in range(1, L + 1):
                h, a = self.gather_module(l)(vs)
                alphas.append(a)
                vs.append(self.sublayer(l, h, cos, sin))
            h_out, a = self.out_res(vs)
            alphas.append(a)

        else:  # block: attnres-paper.md §2.4
            N = cfg.blocks
            if L % N != 0:
                raise ValueError(f"block residual: N={N} blocks does not divide L={L} sublayers")
            S = L // N
            blocks = [x0]
            partial = None
            for l in range(1, L + 1):
                if (l - 1) % S == 0 and partial is not None:  # close the finished block
                    blocks.append(partial)
                    partial = None
                srcs = blocks + ([partial] if partial is not None else [])
                h, a = self.gather_module(l)(srcs)
                alphas.append(a)
                y = self.sublayer(l, h, cos, sin)
                partial = y if partial is None else partial + y
            blocks.append(partial)
            h_out, a = self.out_res(blocks)
            alphas.append(a)

        logits = F.linear(self.norm(h_out), self.head_weight())
        return (logits, alphas) if return_alphas else logits

    def loss(self, tokens, targets):
        """Mean cross-entropy over all B*T tokens."""
        logits = self.forward(tokens)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def design_names(cfg: Config) -> List[str]:
    """The DESIGN.md tensor names of a model with this config (sorted)."""
    names = ["tok_embeddings.weight", "norm.weight"]
    if cfg.norm == "layernorm":
        names.append("norm.bias")
    if not cfg.tie_embeddings:
        names.append("lm_head.weight")
    if cfg.residual != "sum":
        names += ["out_res.query", "out_res.key_norm.weight"]
    for i in range(cfg.n_layers):
        p = f"layers.{i}."
        names += [p + "attn_norm.weight", p + "mlp_norm.weight"]
        if cfg.norm == "layernorm":
            names += [p + "attn_norm.bias", p + "mlp_norm.bias"]
        names += [p + f"attn.{w}.weight" for w in ("wq", "wk", "wv", "wo")]
        mlp = ("w_gate", "w_up", "w_down") if cfg.mlp == "swiglu" else ("w_up", "w_down")
        names += [p + f"mlp.{w}.weight" for w in mlp]
        if cfg.residual != "sum":
            for r in ("attn_res", "mlp_res"):
                names += [p + f"{r}.query", p + f"{r}.key_norm.weight"]
    return sorted(names)


def is_residual_param(name: str) -> bool:
    return name.startswith("out_res.") or "_res." in name


@torch.no_grad()
def randomize_parameters_(model: AttnResLM, generator: Optional[torch.Generator] = None):
    """Golden-file initialisation (non-zero queries), drawn in float64 then cast to each
    parameter's dtype. Draw order: the non-residual parameters in sorted name order, then the
    AttnRes parameters (`*_res.*`) in sorted name order, so models that differ only in residual
    policy share bit-identical common weights. Recipe by name:
      *.query -> 0.5·randn ; *.bias -> 0.1·randn ; other 1-D (norm / key-norm gains) -> 1 + 0.1·randn ;
      tok_embeddings.weight -> randn ; other matrices (linears, lm_head) -> 0.3·randn."""
    params = dict(model.named_parameters())
    order = sorted(n for n in params if not is_residual_param(n)) + \
        sorted(n for n in params if is_residual_param(n))
    for name in order:
        p = params[name]
        r = torch.randn(tuple(p.shape), dtype=torch.float64, generator=generator)
        if name.endswith(".query"):
            v = 0.5 * r
        elif name.endswith(".bias"):
            v = 0.1 * r
        elif p.dim() == 1:
            v = 1.0 + 0.1 * r
        elif name == "tok_embeddings.weight":
            v = r
        else:
            v = 0.3 * r
        p.copy_(v.to(p.dtype))


# --------------------------------------------------------------------------------------------
# safetensors (hand-written, deterministic: sorted JSON keys, header padded with spaces to a
# multiple of 8, data in sorted name order)
# --------------------------------------------------------------------------------------------
_NP_DTYPES = {"F32": "<f4", "F64": "<f8"}
_TORCH_TO_ST = {torch.float32: "F32", torch.float64: "F64"}


def safetensors_bytes(tensors: dict, metadata: Optional[dict] = None) -> bytes:
    """tensors: name -> torch float32/float64 tensor (stored as F32/F64) or numpy array."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs, offset = [], 0
    for name in sorted(tensors):
        t = tensors[name]
        if isinstance(t, torch.Tensor):
            if t.dtype not in _TORCH_TO_ST:
                raise TypeError(f"tensor '{name}': dtype {t.dtype} is not float32/float64")
            st = _TORCH_TO_ST[t.dtype]
            arr = t.detach().cpu().contiguous().numpy()
        else:
            arr = np.asarray(t)
            st = {np.dtype("float32"): "F32", np.dtype("float64"): "F64"}[arr.dtype]
        raw = np.ascontiguousarray(arr.astype(_NP_DTYPES[st])).tobytes(order="C")
        header[name] = {"dtype": st, "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    hjson = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("utf-8")
    hjson += b" " * ((-len(hjson)) % 8)
    return struct.pack("<Q", len(hjson)) + hjson + b"".join(blobs)


def write_safetensors(path, tensors: dict, metadata: Optional[dict] = None) -> bytes:
    """Writes atomically (temporary file + rename). Returns the bytes written."""
    data = safetensors_bytes(tensors, metadata)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return data


def parse_safetensors(data: bytes):
    """Returns (dict name -> torch tensor (F32 -> float32, F64 -> float64), metadata dict)."""
    if len(data) < 8:
        raise ValueError("safetensors: file shorter than 8 bytes")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError(f"safetensors: header length {n} exceeds file size {len(data)}")
    header = json.loads(data[8:8 + n].decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError("safetensors: header is not a JSON object")
    meta = header.pop("__metadata__", {}) or {}
    body = data[8 + n:]
    out, spans = {}, []
    for name, info in header.items():
        dt = info.get("dtype")
        if dt not in _NP_DTYPES:
            raise ValueError(f"safetensors: tensor '{name}' has unsupported dtype {dt!r}")
        shape = [int(s) for s in info["shape"]]
        b, e = (int(x) for x in info["data_offsets"])
        count = int(np.prod(shape)) if shape else 1
        if not (0 <= b <= e <= len(body)) or e - b != count * np.dtype(_NP_DTYPES[dt]).itemsize:
            raise ValueError(f"safetensors: tensor '{name}' has bad data_offsets {[b, e]} for shape {shape}")
        spans.append((b, e))
        arr = np.frombuffer(body[b:e], dtype=_NP_DTYPES[dt]).reshape(shape)
        out[name] = torch.from_numpy(arr.astype(arr.dtype.newbyteorder("=")).copy())
    spans.sort()
    pos = 0
    for b, e in spans:
        if b != pos:
            raise ValueError("safetensors: tensor data is not contiguous / overlaps")
        pos = e
    if pos != len(body):
        raise ValueError("safetensors: trailing bytes after the last tensor")
    return out, meta


def read_safetensors(path):
    with open(path, "rb") as f:
        return parse_safetensors(f.read())


def save_safetensors(model: AttnResLM, path) -> bytes:
    """Float32 weights under their DESIGN names, config as __metadata__ (string values)."""
    tensors = {k: v.detach().to(torch.float32) for k, v in model.state_dict().items()}
    assert sorted(tensors) == design_names(model.cfg), "state_dict names differ from DESIGN.md"
    return write_safetensors(path, tensors, model.cfg.metadata())


def load_safetensors(path, dtype: Optional[torch.dtype] = None, strict: bool = True) -> AttnResLM:
    """Builds a model from a file written by save_safetensors (or by the C++ writer).
    dtype: model dtype (default: float64 if any parameter tensor is F64, else float32).
    strict=False ignores tensors that are not parameters (e.g. the golden files' logits, grad.*)."""
    tensors, meta = read_safetensors(path)
    cfg = Config.from_metadata(meta)
    names = design_names(cfg)
    missing = [n for n in names if n not in tensors]
    if missing:
        raise ValueError(f"{path}: missing tensors {missing}")
    extra = sorted(set(tensors) - set(names))
    if strict and extra:
        raise ValueError(f"{path}: unexpected tensors {extra}")
    if dtype is None:
        dtype = torch.float64 if any(tensors[n].dtype == torch.float64 for n in names) else torch.float32
    model = AttnResLM(cfg).to(dtype)
    sd = {n: tensors[n].to(dtype) for n in names}
    for n in names:
        want = tuple(model.state_dict()[n].shape)
        if tuple(sd[n].shape) != want:
            raise ValueError(f"{path}: tensor '{n}' has shape {list(sd[n].shape)}, expected {list(want)}")
    model.load_state_dict(sd, strict=True)
    return model


# --------------------------------------------------------------------------------------------
# Self-test
# --------------------------------------------------------------------------------------------
def _max_diff(a, b):
    return (a - b).abs().max().item()


def _shared_weights_model(cfg, seed, dtype=torch.float64, golden=True):
    torch.manual_seed(seed)
    m = AttnResLM(cfg).to(dtype)
    if golden:
        randomize_parameters_(m, torch.Generator().manual_seed(seed))
    return m


def self_test() -> int:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    def ok(cond, msg):
        if not cond:
            raise AssertionError(msg)

    base = dict(vocab=19, d_model=8, n_heads=2, n_layers=2, d_ff=12)
    L = 4
    tokens = torch.randint(0, 19, (2, 5))
    targets = torch.randint(0, 19, (2, 5))
    variants = [dict(), dict(mlp="gelu", norm="layernorm", tie_embeddings=True)]

    def label(arch):
        return "gelu/layernorm/tied" if arch else "swiglu/rmsnorm"

    # 1. names: state_dict keys are exactly the DESIGN names, for every config kind
    for arch in variants:
        for res, N in (("sum", 0), ("full", L), ("block", 2), ("block", 1)):
            cfg = Config(**base, **arch, residual=res, blocks=N)
            ok(sorted(AttnResLM(cfg).state_dict()) == design_names(cfg), f"names {res} {arch}")
    print("ok  state_dict keys == DESIGN names (sum/full/block, swiglu+rmsnorm and gelu+layernorm+tied)")

    # 2. refusal of N not dividing L, naming L and N
    try:
        Config(**base, residual="block", blocks=3)
    except ValueError as e:
        ok("L=4" in str(e) and "N=3" in str(e), str(e))
    else:
        raise AssertionError("block N=3 over L=4 must be refused")
    ok(n_sources("block", 54, 9, 55) == 10, "48B source count")
    print("ok  block N=3 over L=4 refused with an error naming L and N; L=54 N=9 -> 10 output sources")

    # 3. RoPE against the literal per-element formula
    Dh, T = 6, 4
    x = torch.randn(1, 1, T, Dh, dtype=torch.float64)
    cos, sin = rope_tables(T, Dh, 10000.0, torch.float64)
    y = apply_rope(x, cos, sin)
    for pos in range(T):
        for j in range(Dh // 2):
            a = pos * 10000.0 ** (-2.0 * j / Dh)
            e0 = x[0, 0, pos, j] * math.cos(a) - x[0, 0, pos, j + Dh // 2] * math.sin(a)
            e1 = x[0, 0, pos, j + Dh // 2] * math.cos(a) + x[0, 0, pos, j] * math.sin(a)
            ok(abs(y[0, 0, pos, j] - e0) < 1e-14 and abs(y[0, 0, pos, j + Dh // 2] - e1) < 1e-14, "rope")
    print("ok  RoPE rotate-half matches the per-element formula")

    # 4. causality: changing a later token leaves earlier logits unchanged
    for arch in variants:
        m = _shared_weights_model(Config(**base, **arch, residual="block", blocks=2), 5)
        t2 = tokens.clone()
        t2[:, -1] = (t2[:, -1] + 1) % 19
        a, b = m(tokens), m(t2)
        ok(torch.equal(a[:, :-1], b[:, :-1]) and not torch.equal(a[:, -1], b[:, -1]), "causal")
    print("ok  causal: a change at position T-1 only changes logits at T-1")

    # 5. zero queries: Full / Block == Sum with the same shared weights (attnres-paper.md §1.3)
    for arch in variants:
        for golden in (True, False):
            seed = 7
            sum_m = _shared_weights_model(Config(**base, **arch, residual="sum"), seed, golden=golden)
            sum_logits = sum_m(tokens)
            for res, N in (("full", L), ("block", 2), ("block", 4), ("block", 1)):
                cfg = Config(**base, **arch, residual=res, blocks=N)
                m = _shared_weights_model(cfg, seed, golden=golden)
                with torch.no_grad():
                    for n, p in m.named_parameters():
                        if n.endswith(".query"):
                            p.zero_()
                sd_sum = sum_m.state_dict()
                for n, p in m.state_dict().items():
                    if not is_residual_param(n):
                        ok(torch.equal(p, sd_sum[n]), f"shared weight {n}")
                lg, alphas = m(tokens, return_alphas=True)
                for l, a in enumerate(alphas, 1):
                    k = n_sources(res, L, N, l)
                    ok(a.shape[0] == k and torch.allclose(a, torch.full_like(a, 1.0 / k), atol=1e-15), "uniform")
                d_plain = _max_diff(lg, sum_logits)
                if golden:  # unit-scale activations: the eps effect is tiny
                    ok(d_plain < 1e-4, f"zero-query {res} N={N}: {d_plain}")
                # exact: the Sum model with eps' = eps·n² at each norm (n = sources at that point)
                ref = _shared_weights_model(Config(**base, **arch, residual="sum"), seed, golden=golden)
                for l in range(1, L + 2):
                    nn_ = n_sources(res, L, N, l)
                    norm = ref.norm if l == L + 1 else (
                        ref.layers[(l - 1) // 2].attn_norm if l % 2 else ref.layers[(l - 1) // 2].mlp_norm)
                    norm.eps = cfg.norm_eps * nn_ * nn_
                ref_logits = ref(tokens)
                d_exact = _max_diff(lg, ref_logits)
                ok(d_exact < 1e-12, f"zero-query scaled-eps {res} N={N}: {d_exact}")
                # gradients of the shared weights agree too
                lm = F.cross_entropy(lg.reshape(-1, 19), targets.reshape(-1))
                lr = F.cross_entropy(ref_logits.reshape(-1, 19), targets.reshape(-1))
                gm = dict(zip([n for n, _ in m.named_parameters()],
                              torch.autograd.grad(lm, list(m.parameters()))))
                gr = dict(zip([n for n, _ in ref.named_parameters()],
                              torch.autograd.grad(lr, list(ref.parameters()))))
                for n, g in gr.items():
                    ok(_max_diff(gm[n], g) < 1e-11 * max(1.0, g.abs().max().item()), f"grad {n}")
                for n, g in gm.items():
                    if n.endswith("key_norm.weight"):
                        ok(g.abs().max().item() == 0.0, f"key-norm gain grad at zero query {n}")
                print(f"ok  zero queries, {res:5s} N={N} {label(arch)} "
                      f"{'golden-init' if golden else 'default-init'}: |logits - sum| = {d_plain:.2e}, "
                      f"with eps*n^2: {d_exact:.2e}; shared-weight grads equal")

    # 6. Block with N = L is Full AttnRes (bit-identical, forward and backward)
    for arch in variants:
        full = _shared_weights_model(Config(**base, **arch, residual="full"), 11)
        blk = _shared_weights_model(Config(**base, **arch, residual="block", blocks=L), 11)
        lf, lb = full.loss(tokens, targets), blk.loss(tokens, targets)
        ok(torch.equal(full(tokens), blk(tokens)) and torch.equal(lf, lb), "block N=L forward")
        gf = torch.autograd.grad(lf, list(full.parameters()))
        gb = torch.autograd.grad(lb, list(blk.parameters()))
        ok(all(torch.equal(a, b) for a, b in zip(gf, gb)), "block N=L grads")
    print("ok  block N=L == full, bit for bit (logits, loss, every gradient)")

    # 7. save/load round trip (float32, deterministic bytes)
    import tempfile
    for arch in variants:
        cfg = Config(**base, **arch, residual="block", blocks=2)
        m = AttnResLM(cfg)
        randomize_parameters_(m, torch.Generator().manual_seed(3))
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "m.safetensors")
            data = save_safetensors(m, p)
            ok(data == safetensors_bytes({k: v for k, v in m.state_dict().items()}, cfg.metadata()), "bytes")
            m2 = load_safetensors(p)
            ok(m2.cfg == cfg, "config round trip")
            ok(all(v.dtype == torch.float32 for v in m2.state_dict().values()), "float32 load")
            ok(torch.equal(m(tokens), m2(tokens)), "round-trip logits")
            _, meta = read_safetensors(p)
            ok(sorted(meta) == sorted(CONFIG_KEYS), f"metadata keys {sorted(meta)}")
    print("ok  save_safetensors / load_safetensors round trip (float32, bit-identical logits)")

    # 8. gradcheck of tiny models in double (all parameters, non-zero queries)
    from torch.nn.utils.stateless import functional_call
    tiny = dict(vocab=5, d_model=4, n_heads=2, n_layers=2, d_ff=6)
    tt, tg = torch.randint(0, 5, (1, 3)), torch.randint(0, 5, (1, 3))
    for arch in variants:
        for res, N in (("sum", 0), ("full", L), ("block", 2), ("block", 1)):
            m = _shared_weights_model(Config(**tiny, **arch, residual=res, blocks=N), 13)
            names = [n for n, _ in m.named_parameters()]
            params = tuple(p.detach().clone().requires_grad_(True) for p in m.parameters())

            def fn(*ps, m=m, names=names):
                logits = functional_call(m, dict(zip(names, ps)), (tt,))
                return F.cross_entropy(logits.reshape(-1, 5), tg.reshape(-1))

            ok(torch.autograd.gradcheck(fn, params, eps=1e-6, atol=1e-7, rtol=1e-5), f"gradcheck {res}")
            print(f"ok  gradcheck {res:5s} N={N} {label(arch)} ({sum(p.numel() for p in params)} inputs)")
    print("self-test passed")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--self-test", action="store_true", help="run the reference model's self-checks")
    args = ap.parse_args(argv)
    if args.self_test:
        return self_test()
    ap.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
