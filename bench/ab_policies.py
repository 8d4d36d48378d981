#!/usr/bin/python3
"""Each residual policy's whole-step overhead over the first one, in fresh processes.

Runs `attnres bench --json` once per policy per round, the policies in a rotating order
(round r starts with policy r mod P), and prints per policy the median step time and the median
(with quartiles) of its per-round ratio to the first policy. A round's policies run back to back,
so a slow minute of the machine touches them alike; the ratio within a round is what is compared.

  /usr/bin/python3 bench/ab_policies.py --policies sum,block:4,block:8,full --mode train --rounds 8
"""

import argparse
import os
import statistics
import sys

from compare_torch import policy_args, run_json  # the same policy names and `attnres bench` runner


def run_once(args, policy):
    residual, blocks = policy_args(policy)
    cmd = [args.bin, "bench", "--residual", residual, *(["--blocks", str(blocks)] if residual == "block" else []),
           "--modes", args.mode, "--threads", str(args.threads), "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--json", *args.extra]
    return run_json(cmd, dict(os.environ))["median_s"]


def quartiles(xs):
    if len(xs) < 2:
        return xs[0], xs[0]
    q = statistics.quantiles(xs, n=4)
    return q[0], q[2]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", default="build/release/tools/attnres/attnres")
    p.add_argument("--policies", default="sum,block:4,block:8", help="comma-separated; the first is the baseline")
    p.add_argument("--mode", default="train", choices=["train", "prefill", "decode"])
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("extra", nargs="*", help="more `attnres bench` flags, after --")
    args = p.parse_args()
    policies = args.policies.split(",")
    times = {q: [] for q in policies}
    for r in range(args.rounds):
        order = policies[r % len(policies):] + policies[:r % len(policies)]
        for q in order:
            times[q].append(run_once(args, q))
        line = "  ".join(f"{q} {times[q][-1] * 1e3:.1f} ms" for q in policies)
        print(f"round {r + 1}: {line}", file=sys.stderr, flush=True)
    base = policies[0]
    print(f"{args.mode}, {args.threads} threads, {args.rounds} rounds of fresh processes")
    print(f"{'policy':<10} {'median step':>12} {'overhead over ' + base:>22} {'quartiles':>18}")
    for q in policies:
        med = statistics.median(times[q]) * 1e3
        if q == base:
            print(f"{q:<10} {med:>9.1f} ms {'—':>22}")
            continue
        ratios = [(a / b - 1) * 100 for a, b in zip(times[q], times[base])]
        lo, hi = quartiles(ratios)
        print(f"{q:<10} {med:>9.1f} ms {statistics.median(ratios):>+21.2f}% {lo:>+8.2f} … {hi:+.2f} %")


if __name__ == "__main__":
    main()
