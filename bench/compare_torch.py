#!/usr/bin/python3
"""compare_torch.py — attnres and PyTorch side by side on the same model, same sizes, same threads.

For every residual policy and every mode (train step, prefill, KV-cache decode step) it runs the
attnres binary (`attnres bench --json`) and this script's PyTorch worker alternately, A B A B,
each in a fresh process (so peak RSS belongs to one mode), and prints medians and ratios.

    /usr/bin/python3 bench/compare_torch.py --attnres build/release/tools/attnres/attnres
    /usr/bin/python3 bench/compare_torch.py --size torch-baseline --reps 5 --out cmp.json

The PyTorch model is tools/reference/attnres_ref.py (the repository's reference; identical
architecture, parameter names and initialisation), trained with torch.optim.AdamW and
clip_grad_norm_ exactly as `attnres bench` trains; decoding uses a KV cache written below with
the reference model's own modules. PyTorch runs eagerly (1.13 has no torch.compile). For a fair
peer PyTorch must use an OpenMP BLAS: Debian's libopenblas0-openmp (tools/ensure-deps.sh
--bench installs it); the pthreads OpenBLAS build fights torch's OpenMP threads.

Both sides get the same thread count (OMP_NUM_THREADS and torch.set_num_threads).

Mode decode16 decodes with bf16 weights: attnres with `--decode-weights bf16` (bf16 copies of the
weight matrices, float arithmetic), PyTorch with the model and its KV cache converted to
torch.bfloat16 (the usual way to decode in bf16 there; its arithmetic is then bf16 too). The
prompt runs in float32 on the attnres side, in bf16 on PyTorch's.
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# Named sizes: DESIGN.md's default, the PyTorch baseline of issue 5, and a wider model (d = 512)
# for the FMA-peak comparison.
SIZES = {
    "default": dict(layers=8, d_model=256, heads=4, d_ff=704, mlp="swiglu", tie=False, batch=8, seq=256),
    "torch-baseline": dict(layers=8, d_model=256, heads=4, d_ff=1024, mlp="gelu", tie=True, batch=8, seq=256),
    "d512": dict(layers=8, d_model=512, heads=8, d_ff=1408, mlp="swiglu", tie=False, batch=8, seq=256),
}


# ------------------------------------------------------------------------------------------------
# The PyTorch worker (runs in its own process)
# ------------------------------------------------------------------------------------------------
def torch_worker(a):
    import numpy as np  # noqa: F401  (torch needs it loaded for from_numpy paths)
    import torch
    import torch.nn.functional as F

    sys.path.insert(0, os.path.join(ROOT, "tools", "reference"))
    from attnres_ref import AttnResLM, Config, apply_rope, rope_tables

    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    blocks = {"sum": 0, "full": 2 * a.layers, "block": a.blocks}[a.residual]
    cfg = Config(vocab=256, d_model=a.d_model, n_heads=a.heads, n_layers=a.layers, d_ff=a.d_ff,
                 residual=a.residual, blocks=blocks, tie_embeddings=a.tie, mlp=a.mlp)
    model = AttnResLM(cfg)
    g = torch.Generator().manual_seed(7)

    def peak_rss_mib():
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    out = dict(framework="torch", residual=a.residual, blocks=blocks, threads=a.threads, mode=a.mode)

    if a.mode == "train":
        tokens = torch.randint(0, 256, (a.batch, a.seq), generator=g)
        targets = torch.randint(0, 256, (a.batch, a.seq), generator=g)
        decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
        no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                                 {"params": no_decay, "weight_decay": 0.0}],
                                lr=1e-4, betas=(0.9, 0.95), eps=1e-8)
        times = []
        for s in range(a.warmup + a.steps):
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss = model.loss(tokens, targets)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            if s >= a.warmup:
                times.append(time.perf_counter() - t0)
        t = statistics.median(times)
        out.update(median_s=t, tokens_per_s=a.batch * a.seq / t, times_s=times, loss=float(loss))

    else:
        # KV-cache inference with the reference model's modules: per transformer layer a
        # preallocated K and V [B, H, capacity, Dh]; positions pos .. pos+T-1 are appended.
        H, Dh, L = cfg.n_heads, cfg.head_dim, cfg.n_sublayers

        def attention(layer, x, cache, pos, cos, sin):
            attn = layer.attn
            B, T, D = x.shape
            q = attn.wq(x).view(B, T, H, Dh).transpose(1, 2)
            k = attn.wk(x).view(B, T, H, Dh).transpose(1, 2)
            v = attn.wv(x).view(B, T, H, Dh).transpose(1, 2)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
            kc, vc = cache
            kc[:, :, pos:pos + T] = k
            vc[:, :, pos:pos + T] = v
            keys, vals = kc[:, :, :pos + T], vc[:, :, :pos + T]
            scores = (q @ keys.transpose(-1, -2)) * (1.0 / math.sqrt(Dh))
            if T > 1:  # query t sees keys 0 .. pos+t
                mask = torch.ones(T, pos + T, dtype=torch.bool).triu(pos + 1)
                scores = scores.masked_fill(mask, float("-inf"))
            o = (torch.softmax(scores, dim=-1) @ vals).transpose(1, 2).reshape(B, T, D)
            return attn.wo(o)

        def run(tokens, caches, pos, cos_all, sin_all):
            T = tokens.shape[1]
            cos, sin = cos_all[pos:pos + T], sin_all[pos:pos + T]

            def sub(l, h):
                layer = model.layers[(l - 1) // 2]
                if l % 2 == 1:
                    return attention(layer, layer.attn_norm(h), caches[(l - 1) // 2], pos, cos, sin)
                return layer.mlp(layer.mlp_norm(h))

            x0 = model.tok_embeddings(tokens)
            if cfg.residual == "sum":
                h = x0
                for l in range(1, L + 1):
                    h = h + sub(l, h)
            elif cfg.residual == "full":
                vs = [x0]
                for l in range(1, L + 1):
                    vs.append(sub(l, model.gather_module(l)(vs)[0]))
                h = model.out_res(vs)[0]
            else:
                S = L // cfg.blocks
                blocks_, partial = [x0], None
                for l in range(1, L + 1):
                    if (l - 1) % S == 0 and partial is not None:
                        blocks_.append(partial)
                        partial = None
                    srcs = blocks_ + ([partial] if partial is not None else [])
                    y = sub(l, model.gather_module(l)(srcs)[0])
                    partial = y if partial is None else partial + y
                blocks_.append(partial)
                h = model.out_res(blocks_)[0]
            return F.linear(model.norm(h[:, -1:]) if T == 1 else model.norm(h), model.head_weight())

        dtype = torch.bfloat16 if a.mode == "decode16" else torch.float32
        model.to(dtype)

        def new_caches(B, cap):
            return [(torch.zeros(B, H, cap, Dh, dtype=dtype), torch.zeros(B, H, cap, Dh, dtype=dtype))
                    for _ in range(cfg.n_layers)]

        with torch.no_grad():
            if a.mode == "prefill":
                cos_all, sin_all = rope_tables(a.seq, Dh, cfg.rope_theta, torch.float32)
                tokens = torch.randint(0, 256, (a.batch, a.seq), generator=g)
                times = []
                for s in range(a.warmup + a.steps):
                    caches = new_caches(a.batch, a.seq)
                    t0 = time.perf_counter()
                    run(tokens, caches, 0, cos_all, sin_all)
                    if s >= a.warmup:
                        times.append(time.perf_counter() - t0)
                t = statistics.median(times)
                out.update(median_s=t, tokens_per_s=a.batch * a.seq / t, times_s=times)
            else:
                cap = a.prompt + a.new
                cos_all, sin_all = rope_tables(cap, Dh, cfg.rope_theta, dtype)
                per_token = []
                for _ in range(max(1, a.steps // 5)):
                    caches = new_caches(1, cap)
                    run(torch.randint(0, 256, (1, a.prompt), generator=g), caches, 0, cos_all, sin_all)
                    nxt = torch.zeros(1, 1, dtype=torch.long)
                    for k in range(a.new):
                        t0 = time.perf_counter()
                        logits = run(nxt, caches, a.prompt + k, cos_all, sin_all)
                        per_token.append(time.perf_counter() - t0)
                        nxt = logits[:, -1].argmax(dim=-1, keepdim=True)
                t = statistics.median(per_token)
                out.update(median_s=t, tokens_per_s=1.0 / t, tokens=len(per_token))
    out["peak_rss_mib"] = peak_rss_mib()
    out["batch"] = 1 if a.mode in ("decode", "decode16") else a.batch
    print(json.dumps(out))


# ------------------------------------------------------------------------------------------------
# The driver
# ------------------------------------------------------------------------------------------------
def policy_args(p):
    if p == "sum":
        return "sum", 0
    if p == "full":
        return "full", 0
    if p.startswith("block:"):
        return "block", int(p.split(":")[1])
    raise SystemExit(f"compare_torch: unknown policy '{p}' (sum, full, block:N)")


def run_json(cmd, env):
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"compare_torch: command failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr}")
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise SystemExit(f"compare_torch: no JSON from: {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    return json.loads(lines[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--attnres", default=os.path.join(ROOT, "build", "release", "tools", "attnres", "attnres"),
                    help="the attnres binary (default: build/release/tools/attnres/attnres)")
    ap.add_argument("--size", choices=sorted(SIZES), default="default")
    ap.add_argument("--policies", default="sum,block:4,full", help="comma-separated: sum, full, block:N")
    ap.add_argument("--modes", default="train,prefill,decode",
                    help="comma-separated: train, prefill, decode, decode16 (decoding with bf16 weights)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3, help="A/B pairs per (policy, mode)")
    ap.add_argument("--steps", type=int, default=5, help="timed repetitions inside each process")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--out", help="write every measurement and the summary as JSON here")
    ap.add_argument("--openblas-coretype", default="auto",
                    help="OPENBLAS_CORETYPE for both sides (auto: SkylakeX on AVX-512 CPUs; '' leaves it unset)")
    # worker mode (internal)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for k in ("layers", "d_model", "heads", "d_ff", "batch", "seq", "blocks"):
        ap.add_argument("--" + k.replace("_", "-"), dest=k, type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--mlp", default="swiglu", help=argparse.SUPPRESS)
    ap.add_argument("--tie", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--residual", default="sum", help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="train", help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.worker:
        torch_worker(a)
        return 0

    if not os.access(a.attnres, os.X_OK):
        raise SystemExit(f"compare_torch: no attnres binary at {a.attnres} "
                         "(cmake --preset release && cmake --build --preset release --target attnres_cli)")
    size = SIZES[a.size]
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), OPENBLAS_NUM_THREADS=str(a.threads))
    # Both sides use the same OpenBLAS; give both the same kernels. "auto": OpenBLAS 0.3.21 does
    # not know Zen 4/5 and would use its AVX2 kernels, so on an AVX-512 CPU both get SkylakeX's
    # (attnres would otherwise switch by itself, core/blas.hpp, and PyTorch would not).
    coretype = a.openblas_coretype
    if coretype == "auto":
        flags = open("/proc/cpuinfo").read().split("flags", 2)[1].split("\n", 1)[0].split()
        avx512 = all(f in flags for f in ("avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"))
        coretype = "SkylakeX" if avx512 else ""
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    common = ["--layers", str(size["layers"]), "--d-model", str(size["d_model"]), "--heads", str(size["heads"]),
              "--d-ff", str(size["d_ff"]), "--mlp", size["mlp"], "--batch", str(size["batch"]),
              "--seq", str(size["seq"]), "--steps", str(a.steps), "--warmup", str(a.warmup),
              "--prompt", str(a.prompt), "--new", str(a.new)] + (["--tie"] if size["tie"] else [])
    policies = a.policies.split(",")
    modes = a.modes.split(",")
    for m in modes:
        if m not in ("train", "prefill", "decode", "decode16"):
            raise SystemExit(f"compare_torch: unknown mode '{m}' (train, prefill, decode, decode16)")
    print(f"compare_torch: size '{a.size}' {size}, {a.threads} threads, {a.reps} A/B pairs per cell, "
          f"{a.steps} timed repetitions per process, OPENBLAS_CORETYPE={env.get('OPENBLAS_CORETYPE', '(unset)')}",
          flush=True)

    results = []  # every process's JSON
    for rep in range(a.reps):
        for p in policies:
            residual, blocks = policy_args(p)
            for mode in modes:
                pa = ["--residual", residual] + (["--blocks", str(blocks)] if residual == "block" else [])
                ours = [a.attnres, "bench", "--json", "--threads", str(a.threads)] + common + pa + (
                    ["--modes", "decode", "--decode-weights", "bf16"] if mode == "decode16" else ["--modes", mode])
                theirs = [sys.executable, os.path.abspath(__file__), "--worker", "--threads", str(a.threads),
                          "--mode", mode] + common + pa
                # alternate which goes first, so drift does not favour one side
                order = [("attnres", ours), ("torch", theirs)]
                if rep % 2 == 1:
                    order.reverse()
                for name, cmd in order:
                    r = run_json(cmd, env)
                    r.update(framework=name, policy=p, rep=rep, mode=mode)
                    results.append(r)
                    print(f"  rep {rep} {p:8s} {mode:8s} {name:8s} {r['tokens_per_s']:10.1f} tokens/s  "
                          f"peak RSS {r['peak_rss_mib']:7.0f} MiB", flush=True)

    def cell(fw, p, mode, key="tokens_per_s"):
        return [r[key] for r in results if r["framework"] == fw and r["policy"] == p and r["mode"] == mode]

    summary = []
    print()
    print(f"{'mode':8s} {'policy':9s} {'attnres tok/s':>14s} {'torch tok/s':>12s} {'ratio':>7s} "
          f"{'attnres RSS':>12s} {'torch RSS':>10s} {'ovh attnres':>12s} {'ovh torch':>10s}")
    for mode in modes:
        for p in policies:
            ours, theirs = cell("attnres", p, mode), cell("torch", p, mode)
            ratios = [o / t for o, t in zip(ours, theirs)]  # same-rep pairs
            row = dict(mode=mode, policy=p, attnres_tokens_per_s=statistics.median(ours),
                       torch_tokens_per_s=statistics.median(theirs), ratio=statistics.median(ratios),
                       attnres_peak_rss_mib=statistics.median(cell("attnres", p, mode, "peak_rss_mib")),
                       torch_peak_rss_mib=statistics.median(cell("torch", p, mode, "peak_rss_mib")))
            g = cell("attnres", p, mode, "gflops_per_s") if mode not in ("decode", "decode16") else []
            if g:
                row["attnres_gflops_per_s"] = statistics.median(g)
            line = (f"{mode:8s} {p:9s} {row['attnres_tokens_per_s']:14.1f} {row['torch_tokens_per_s']:12.1f} "
                    f"{row['ratio']:6.2f}x {row['attnres_peak_rss_mib']:10.0f}Mi {row['torch_peak_rss_mib']:8.0f}Mi")
            if "sum" in policies and p != "sum":  # overhead = median time(policy) / median time(sum) - 1
                for fw in ("attnres", "torch"):
                    ovh = statistics.median(cell(fw, "sum", mode)) / row[f"{fw}_tokens_per_s"] - 1
                    row[f"{fw}_overhead_vs_sum"] = ovh
                    line += f" {100 * ovh:+10.1f}%"
            summary.append(row)
            print(line)
    print("\nratio = median over A/B pairs of attnres/torch tokens per second; overhead = median time vs Sum.")
    if a.out:
        with open(a.out + ".tmp", "w") as f:
            json.dump(dict(size=a.size, config=size, threads=a.threads, reps=a.reps, steps=a.steps,
                           results=results, summary=summary), f, indent=1)
        os.replace(a.out + ".tmp", a.out)
        print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
