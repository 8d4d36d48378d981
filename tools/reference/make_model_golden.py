#!/usr/bin/python3
"""Whole-model golden files for attnres (DESIGN.md testing tier 5), from the PyTorch reference
model tools/reference/attnres_ref.py. Run by hand from the repository root (never by the build):

    /usr/bin/python3 tools/reference/make_model_golden.py

Writes tests/golden/model/*.safetensors; see tests/golden/model/README.md. Bit-for-bit
reproducible on one machine: torch.manual_seed per config, one thread, float64 computation for
the F64 goldens, and the deterministic safetensors writer of attnres_ref.
"""

import pathlib
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import attnres_ref as ref  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
OUT_DIR = ROOT / "tests" / "golden" / "model"
GENERATOR = "tools/reference/make_model_golden.py"
MAX_BYTES = 100_000

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

B, T = 2, 5
TINY = dict(vocab=19, d_model=8, n_heads=2, n_layers=2, d_ff=12, norm_eps=1e-6, rope_theta=10000.0)
SEED_SWIGLU = 20260317   # shared by sum / full / block N=2 / block N=4: common weights are bit-identical
SEED_GELU = 20260318
SEED_EXPORT = 20260319
EXPORT_TOKENS = [3, 14, 15, 9, 2, 6, 5]  # T = 7

# (file stem, config overrides, seed)
CONFIGS = [
    ("sum", dict(residual="sum"), SEED_SWIGLU),
    ("full", dict(residual="full"), SEED_SWIGLU),
    ("block_N2", dict(residual="block", blocks=2), SEED_SWIGLU),
    ("block_N4", dict(residual="block", blocks=4), SEED_SWIGLU),  # S = 1: equals full
    ("block_N2_gelu_layernorm_tied",
     dict(residual="block", blocks=2, mlp="gelu", norm="layernorm", tie_embeddings=True), SEED_GELU),
]


def run_config(stem, overrides, seed):
    cfg = ref.Config(**TINY, **overrides)
    model = ref.AttnResLM(cfg).to(torch.float64)
    # Draw order after the seed: tokens, targets, then parameters (attnres_ref.randomize_parameters_:
    # non-residual parameters in sorted name order, then *_res.* in sorted name order).
    torch.manual_seed(seed)
    tokens = torch.randint(0, cfg.vocab, (B, T))
    targets = torch.randint(0, cfg.vocab, (B, T))
    ref.randomize_parameters_(model)

    logits = model(tokens)
    loss = F.cross_entropy(logits.reshape(-1, cfg.vocab), targets.reshape(-1))
    named = list(model.named_parameters())
    grads = torch.autograd.grad(loss, [p for _, p in named])

    tensors = {}
    for name, p in model.state_dict().items():
        tensors[name] = p.detach().clone()
    assert sorted(tensors) == ref.design_names(cfg)
    for (name, _), g in zip(named, grads):
        tensors["grad." + name] = g.detach().clone()
    tensors["tokens"] = tokens.to(torch.float64)
    tensors["targets"] = targets.to(torch.float64)
    tensors["logits"] = logits.detach().clone()
    tensors["loss"] = loss.detach().reshape(1).clone()

    # ---- self-checks ----
    for name, t in tensors.items():
        assert t.dtype == torch.float64, name
        assert torch.isfinite(t).all(), name
    for name, _ in named:
        g = tensors["grad." + name]
        if name.startswith("layers.0.attn_res."):
            # gather point 1 has a single source (x0): alpha = 1, so its query and key-norm gain
            # get exactly zero gradient
            assert cfg.residual != "sum" and torch.count_nonzero(g) == 0, (stem, name)
        else:
            assert g.abs().max() > 0, f"{stem}: zero gradient for {name}"
    lp = torch.log_softmax(logits.detach(), dim=-1)
    manual = -lp.gather(-1, targets.unsqueeze(-1)).mean()
    assert abs(manual.item() - loss.item()) < 1e-14, stem
    if cfg.tie_embeddings:
        assert "lm_head.weight" not in tensors and "grad.lm_head.weight" not in tensors

    meta = cfg.metadata()
    meta.update({
        "B": str(B), "T": str(T), "seed": str(seed), "dtype": "float64",
        "loss_fn": "mean cross-entropy over B*T tokens",
        "init": "query 0.5*randn; bias 0.1*randn; gains 1+0.1*randn; tok_embeddings randn; "
                "matrices 0.3*randn (float64 draws: tokens, targets, non-residual params sorted, "
                "residual params sorted)",
        "generator": GENERATOR, "torch": torch.__version__,
    })
    return cfg, tensors, meta


def check_and_write(name, tensors, meta):
    data = ref.safetensors_bytes(tensors, meta)
    back, bmeta = ref.parse_safetensors(data)
    assert bmeta == meta and sorted(back) == sorted(tensors), name
    for k, t in tensors.items():
        assert back[k].dtype == t.dtype and torch.equal(back[k], t), (name, k)
    assert len(data) < MAX_BYTES, (name, len(data))
    path = OUT_DIR / name
    ref.write_safetensors(path, tensors, meta)
    assert path.read_bytes() == data
    return path, len(data)


def main():
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    results = {}
    for stem, overrides, seed in CONFIGS:
        results[stem] = run_config(stem, overrides, seed)

    # ---- cross-config checks ----
    _, full, full_meta = results["full"]
    _, blk4, blk4_meta = results["block_N4"]
    assert sorted(full) == sorted(blk4)
    for k in full:  # Block N = L is Full AttnRes
        assert torch.equal(full[k], blk4[k]), f"block_N4 != full at {k}"
    assert {k for k in full_meta if full_meta[k] != blk4_meta[k]} == {"residual"}  # blocks = 4 in both
    _, summ, _ = results["sum"]
    _, blk2, _ = results["block_N2"]
    for k, t in summ.items():  # the three policies share tokens and common weights
        if not k.startswith("grad.") and k not in ("logits", "loss"):
            assert torch.equal(t, full[k]) and torch.equal(t, blk2[k]), k
    assert not torch.equal(summ["logits"], full["logits"])
    assert not torch.equal(full["logits"], blk2["logits"])

    for stem, (cfg, tensors, meta) in results.items():
        path, size = check_and_write(stem + ".safetensors", tensors, meta)
        # the file is also a loadable model: same logits, bit for bit
        m = ref.load_safetensors(path, strict=False)
        assert m.cfg == cfg
        assert torch.equal(m(tensors["tokens"].long()), tensors["logits"]), stem
        print(f"wrote {path.relative_to(ROOT)}  ({size} bytes, {len(tensors)} tensors, "
              f"loss={tensors['loss'].item():.17g})")

    # ---- float32 export, exactly as a PyTorch user would ----
    cfg = ref.Config(**TINY, residual="block", blocks=2)
    model = ref.AttnResLM(cfg)                   # float32
    torch.manual_seed(SEED_EXPORT)
    ref.randomize_parameters_(model)             # non-zero queries (stand-in for training)
    assert all(p.abs().max() > 0 for n, p in model.named_parameters() if n.endswith(".query"))
    wpath = OUT_DIR / "export_block2_f32.safetensors"
    wdata = ref.save_safetensors(model, wpath)
    assert len(wdata) < MAX_BYTES
    loaded = ref.load_safetensors(wpath)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    tokens = torch.tensor([EXPORT_TOKENS], dtype=torch.int64)  # [1,7]
    with torch.no_grad():
        logits32 = loaded(tokens)
        assert torch.equal(logits32, model(tokens))
        logits64 = ref.load_safetensors(wpath, dtype=torch.float64)(tokens)
    err = (logits32.double() - logits64).abs().max().item()
    assert logits32.dtype == torch.float32 and err < 1e-4, err
    lt = {"tokens": tokens.to(torch.float64), "logits": logits32.clone()}
    lmeta = {"weights": "export_block2_f32.safetensors", "T": str(len(EXPORT_TOKENS)),
             "seed": str(SEED_EXPORT), "dtype": "float32 (logits computed in float32)",
             "generator": GENERATOR, "torch": torch.__version__}
    lpath, lsize = check_and_write("export_block2_f32_logits.safetensors", lt, lmeta)
    print(f"wrote {wpath.relative_to(ROOT)}  ({len(wdata)} bytes, {len(ref.design_names(cfg))} tensors)")
    print(f"wrote {lpath.relative_to(ROOT)}  ({lsize} bytes; float32 vs float64 logits: {err:.2e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
