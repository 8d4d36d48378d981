#!/usr/bin/python3
"""Draw the pictures of an `attnres ablate` run from the files it wrote.

    /usr/bin/python3 tools/plot_ablation.py OUTDIR

Reads OUTDIR/summary.json, curves.csv and diagnostics.json and writes, into OUTDIR:

    loss_curves.png          training loss (smoothed) and validation loss of every variant
    alpha_<variant>.png      depth-attention weights α, source × gather point (paper Fig. 8 style),
                             one per AttnRes variant, at the last recorded step, mean over seeds
    depth_rms.png            RMS of each sublayer's output and input per depth (paper Fig. 5b)
    depth_grad_norm.png      gradient norm of each sublayer's output per depth (paper Fig. 5c)
    loss_vs_blocks.png       final validation loss against the number of blocks N (Full at N = L,
                             Sum as a reference line)

Needs python3-matplotlib (Debian); without it, prints how to install it and exits with status 3
(the C++ tool keeps the data files either way). Uses only the standard library besides matplotlib.
"""

import csv
import json
import math
import os
import sys


def fail_no_matplotlib(err):
    print(
        "plot_ablation.py: matplotlib is not available (%s).\n"
        "  Install it with: apt-get install python3-matplotlib   (or tools/ensure-deps.sh python3-matplotlib)\n"
        "  The data files (CSV/JSON) are complete; rerun this script afterwards." % err,
        file=sys.stderr,
    )
    sys.exit(3)


try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm
except Exception as e:  # ImportError, or a broken installation
    fail_no_matplotlib(e)


def variant_sort_key(name):
    """sum first, then block:N by N, then full."""
    if name == "sum":
        return (0, 0)
    if name.startswith("block:"):
        return (1, int(name.split(":")[1]))
    return (2, 0)


def pretty(name, n_sublayers):
    if name == "sum":
        return "Sum (PreNorm)"
    if name == "full":
        return "Full AttnRes (N = L = %d)" % n_sublayers
    if name.startswith("block:"):
        return "Block AttnRes N = %s" % name.split(":")[1]
    return name


def colour_for(names):
    cmap = plt.get_cmap("viridis")
    blocks = [n for n in names if n.startswith("block:")]
    colours = {}
    for n in names:
        if n == "sum":
            colours[n] = "black"
        elif n == "full":
            colours[n] = "tab:red"
        else:
            i = blocks.index(n)
            colours[n] = cmap(0.15 + 0.7 * i / max(1, len(blocks) - 1))
    return colours


def nanmean(xs):
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    return sum(xs) / len(xs) if xs else float("nan")


def ema(xs, alpha):
    out, s = [], None
    for x in xs:
        s = x if s is None else alpha * x + (1 - alpha) * s
        out.append(s)
    return out


def read_curves(path):
    """{variant: {step: ([losses over seeds], [val losses over seeds])}}"""
    curves = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            v = curves.setdefault(row["variant"], {})
            step = int(row["step"])
            loss, val = v.setdefault(step, ([], []))
            if row["loss"]:
                loss.append(float(row["loss"]))
            if row["val_loss"]:
                val.append(float(row["val_loss"]))
    return curves


def plot_loss_curves(outdir, curves, names, colours, L):
    fig, (ax_train, ax_val) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name in names:
        if name not in curves:
            continue
        steps = sorted(curves[name])
        loss = [nanmean(curves[name][s][0]) for s in steps]
        smooth = ema(loss, 2.0 / (1 + max(5, len(steps) // 30)))
        ax_train.plot(steps, loss, color=colours[name], alpha=0.15, linewidth=0.8)
        ax_train.plot(steps, smooth, color=colours[name], label=pretty(name, L), linewidth=1.6)
        vs = [s for s in steps if curves[name][s][1]]
        ax_val.plot(vs, [nanmean(curves[name][s][1]) for s in vs], "o-", color=colours[name], markersize=3,
                    label=pretty(name, L), linewidth=1.4)
    # zoom on the second half, where the variants differ; the first steps drop from ln 256 ≈ 5.5
    for ax, title in ((ax_train, "training loss (light: per step, bold: smoothed)"),
                      (ax_val, "validation loss (mean over seeds)")):
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("loss (nats per byte)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ys = [y for line in ax.get_lines() for y in line.get_ydata()[len(line.get_ydata()) // 4:]
              if not math.isnan(y)]
        if ys:
            lo, hi = min(ys), max(ys)
            ax.set_ylim(lo - 0.05 * (hi - lo + 1e-9), hi + 0.1 * (hi - lo + 1e-9))
    ax_val.legend(fontsize=8)
    fig.suptitle("Loss curves: all variants, same data order, initialisation and schedule")
    fig.tight_layout()
    path = os.path.join(outdir, "loss_curves.png")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def last_records(diag, name):
    """The records of the last recorded step of variant `name`, one per seed."""
    per_seed = diag["variants"].get(name, {})
    recs = []
    for seed, records in per_seed.items():
        if records:
            recs.append(records[-1])
    return recs


def plot_alpha(outdir, diag, name, L):
    recs = last_records(diag, name)
    if not recs or not recs[0]["points"][0]["alpha_mean"]:
        return None
    n_points = L + 1
    n_src = max(len(p["alpha_mean"]) for p in recs[0]["points"])
    grid = [[float("nan")] * n_src for _ in range(n_points)]
    for i in range(n_points):
        for j in range(len(recs[0]["points"][i]["alpha_mean"])):
            grid[i][j] = nanmean([r["points"][i]["alpha_mean"][j] for r in recs])
    fig, ax = plt.subplots(figsize=(max(5.5, 0.42 * n_src + 3.2), 0.32 * n_points + 1.9))
    masked = [[(x if not math.isnan(x) else float("nan")) for x in row] for row in grid]
    im = ax.imshow(masked, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    for i in range(n_points):
        for j in range(n_src):
            x = grid[i][j]
            if not math.isnan(x) and n_src <= 20:
                ax.text(j, i, "%.2f" % x, ha="center", va="center", fontsize=6,
                        color="white" if x < 0.6 else "black")
    block = name.startswith("block:")
    ax.set_xticks(range(n_src))
    if block:
        ax.set_xticklabels(["emb" if j == 0 else "b%d" % j for j in range(n_src)], fontsize=7)
        ax.set_xlabel("source: emb = b0, block sums b1 … bN\n(a point inside block j reads that block's partial sum as bj)",
                      fontsize=8)
    else:
        ax.set_xticklabels(["emb" if j == 0 else str(j) for j in range(n_src)], fontsize=7)
        ax.set_xlabel("source: embedding, then the output v_j of sublayer j", fontsize=8)
    labels = []
    for l in range(1, n_points + 1):
        if l == n_points:
            labels.append("out")
        else:
            labels.append("%d %s" % (l, "attn" if l % 2 == 1 else "mlp"))
    ax.set_yticks(range(n_points))
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_ylabel("gather point (input of sublayer l)")
    step = recs[0]["step"]
    ax.set_title("%s: depth-attention weights α\n(mean over probe tokens and %d seed(s), step %d)"
                 % (pretty(name, L), len(recs), step), fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02, label="α")
    fig.tight_layout()
    path = os.path.join(outdir, "alpha_%s.png" % name.replace(":", ""))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_depth(outdir, diag, names, colours, L):
    fig, (ax_out, ax_in) = plt.subplots(1, 2, figsize=(12, 4.5))
    fig_g, ax_g = plt.subplots(figsize=(7, 4.5))
    for name in names:
        recs = last_records(diag, name)
        if not recs:
            continue
        ls = list(range(1, L + 1))
        out_rms = [nanmean([r["sources"][l]["output_rms"] for r in recs]) for l in ls]
        in_rms = [nanmean([r["points"][l - 1]["input_rms"] for r in recs]) for l in range(1, L + 2)]
        grad = [nanmean([r["sources"][l]["grad_norm"] for r in recs]) for l in ls]
        kw = dict(color=colours[name], label=pretty(name, L), marker="o", markersize=3, linewidth=1.4)
        ax_out.plot(ls, out_rms, **kw)
        ax_in.plot(list(range(1, L + 2)), in_rms, **kw)
        ax_g.plot(ls, grad, **kw)
    step = None
    for name in names:
        recs = last_records(diag, name)
        if recs:
            step = recs[0]["step"]
            break
    ax_out.set_title("output RMS of sublayer l  (RMS of v_l)")
    ax_in.set_title("input RMS of sublayer l  (RMS of h_l; L+1 = stack output)")
    for ax in (ax_out, ax_in):
        ax.set_xlabel("sublayer l (odd: attention, even: MLP)")
        ax.set_ylabel("RMS")
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
    ax_out.legend(fontsize=8)
    fig.suptitle("Magnitudes per depth at step %s (probe batch, mean over seeds) — cf. paper Fig. 5(b)" % step)
    fig.tight_layout()
    p1 = os.path.join(outdir, "depth_rms.png")
    fig.savefig(p1, dpi=120)
    plt.close(fig)

    ax_g.set_title("gradient norm ‖∂ℒ/∂v_l‖ per sublayer output, step %s — cf. paper Fig. 5(c)" % step,
                   fontsize=10)
    ax_g.set_xlabel("sublayer l (odd: attention, even: MLP)")
    ax_g.set_ylabel("gradient norm (Frobenius, probe batch)")
    ax_g.set_yscale("log")
    ax_g.grid(alpha=0.3, which="both")
    ax_g.legend(fontsize=8)
    fig_g.tight_layout()
    p2 = os.path.join(outdir, "depth_grad_norm.png")
    fig_g.savefig(p2, dpi=120)
    plt.close(fig_g)
    return [p1, p2]


def plot_loss_vs_blocks(outdir, summary, L):
    pts = []
    sum_row = None
    for v in summary["variants"]:
        mean = v["val_loss"]["mean"]
        if mean is None:
            continue
        std = v["val_loss"]["std"] or 0.0
        if v["variant"] == "sum":
            sum_row = (mean, std)
        else:
            pts.append((v["blocks"], mean, std, v["variant"]))
    if not pts:
        return None
    pts.sort()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], fmt="o-", color="tab:blue",
                capsize=4, label="AttnRes (Block N; Full at N = L = %d)" % L)
    for n, m, s, name in pts:
        ax.annotate(name, (n, m), textcoords="offset points", xytext=(5, 6), fontsize=8)
    if sum_row:
        ax.axhline(sum_row[0], color="black", linestyle="--", label="Sum (PreNorm baseline)")
        if sum_row[1] > 0:
            ax.axhspan(sum_row[0] - sum_row[1], sum_row[0] + sum_row[1], color="black", alpha=0.08)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(set(p[0] for p in pts)))
    ax.set_xticklabels([str(n) for n in sorted(set(p[0] for p in pts))])
    ax.set_xlabel("number of blocks N")
    ax.set_ylabel("final validation loss (nats per byte)")
    ax.set_title("Validation loss vs number of blocks (mean ± std over %d seed(s))" % len(summary["seeds"]),
                 fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(outdir, "loss_vs_blocks.png")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv):
    if len(argv) != 2:
        print("usage: plot_ablation.py OUTDIR  (the folder `attnres ablate` wrote)", file=sys.stderr)
        return 2
    outdir = argv[1]
    try:
        with open(os.path.join(outdir, "summary.json")) as f:
            summary = json.load(f)
        with open(os.path.join(outdir, "diagnostics.json")) as f:
            diag = json.load(f)
        curves = read_curves(os.path.join(outdir, "curves.csv"))
    except (OSError, ValueError) as e:
        print("plot_ablation.py: cannot read the ablation data in %s: %s" % (outdir, e), file=sys.stderr)
        return 1
    L = summary["n_sublayers"]
    names = sorted([v["variant"] for v in summary["variants"]], key=variant_sort_key)
    colours = colour_for(names)
    written = [plot_loss_curves(outdir, curves, names, colours, L)]
    for name in names:
        if name != "sum":
            written.append(plot_alpha(outdir, diag, name, L))
    written += plot_depth(outdir, diag, names, colours, L)
    written.append(plot_loss_vs_blocks(outdir, summary, L))
    for p in written:
        if p:
            print("wrote %s" % p)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
