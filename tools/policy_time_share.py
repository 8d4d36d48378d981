#!/usr/bin/python3
"""The residual policy's share of the time of a step, from a `perf record --call-graph` profile.

A 1 % difference in decode time is below what wall clocks resolve on a shared machine, but the
share of sampled time a step spends inside the policy is a within-process measurement. Counts
the samples whose call stack is inside STEP (default `::decode_step`) and, among those, the
ones inside the policy's `gather`, `push` or `begin`. With the rest of a step the same work for
every policy, the step-time ratio of two policies is (1 − share_a) / (1 − share_b).

  OMP_NUM_THREADS=1 perf record --call-graph=dwarf,4096 -F 2000 -o block8.data \\
      build/release/tools/attnres/attnres bench --residual block --blocks 8 --modes decode \\
      --threads 1 --steps 600 --prompt 64 --new 128
  /usr/bin/python3 tools/policy_time_share.py block8.data [sum.data ...]
"""

import argparse
import re
import subprocess

POLICY_CALL = re.compile(r"(Sum|BlockAttnRes<\d+>|FullAttnRes)::with<[^>]*>::(gather|push|begin)\b")


def shares(path, step):
    """(samples, samples inside step, samples inside the policy within step)"""
    proc = subprocess.Popen(["perf", "script", "-i", path, "-F", "ip,sym"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    total = in_step = in_policy = 0
    stack = []

    def end_sample():
        nonlocal total, in_step, in_policy
        if not stack:
            return
        total += 1
        frames = "\n".join(stack)
        if step in frames:
            in_step += 1
            in_policy += bool(POLICY_CALL.search(frames))

    for line in proc.stdout:  # perf script: one frame per line, a blank line after each sample
        if line.strip():
            stack.append(line)
        else:
            end_sample()
            stack = []
    end_sample()
    if proc.wait() != 0:
        raise SystemExit(f"perf script failed on {path}")
    return total, in_step, in_policy


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("profiles", nargs="+", help="perf.data files recorded with --call-graph")
    p.add_argument("--step", default="::decode_step", help="the step function whose time is split")
    args = p.parse_args()
    for path in args.profiles:
        total, in_step, in_policy = shares(path, args.step)
        if in_step == 0:
            raise SystemExit(f"{path}: no sample inside {args.step}")
        print(f"{path}: {total} samples, {in_step} inside {args.step}, {in_policy} of those in the policy "
              f"= {100 * in_policy / in_step:.3f} %")


if __name__ == "__main__":
    main()
