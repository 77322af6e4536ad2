"""Run one benchmark script against two source trees of matgrad, interleaved, and compare.

Each benchmark prints, under a section title, a line per contender with its ratio to
hand-written NumPy (or the closed form);
this runs the script alternately with ``PYTHONPATH=OLD`` and ``PYTHONPATH=NEW`` (``--runs``
times each, in turn, so load spikes hit both alike), takes the median of matgrad's ratio to
hand-written NumPy per section for each tree, and prints new/old. A ratio to NumPy measured in
the same process is steadier on a shared machine than a raw time.

    git worktree add /tmp/old <commit>
    python benchmarks/compare_revisions.py /tmp/old/src src benchmarks/bench_core.py --quick

Arguments after the script are passed to it.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys

# the benchmarks' result lines: bench_core's `  matgrad  4.2 ms  4.36x numpy`, bench_linalg's
# `logdet  1.548  1.114  0.72 ...` (case, numpy ms, matgrad ms, ratio), bench_jacobian's
# `  hessian, vectorized (rev-over-rev)   0.253 ms   12.9x`
LINES = (
    re.compile(r"^\s+(?P<who>matgrad\S*)\s+[\d.]+ \S+\s+(?P<ratio>[\d.]+)x"),
    re.compile(r"^(?P<who>[a-z][\w-]*)\s+[\d.]+\s+[\d.]+\s+(?P<ratio>[\d.]+)(\s|$)"),
    re.compile(r"^\s+(?P<who>(?!closed form)\S.*?)\s{2,}[\d.]+ ms\s+(?P<ratio>[\d.]+)x"),
)


def run_once(src: str, script: str, args: list[str]) -> dict[str, float]:
    """matgrad's ratio per (section, contender) from one run of ``script`` with ``src``."""
    env = dict(os.environ, PYTHONPATH=src)
    out = subprocess.run(
        [sys.executable, script, *args], env=env, capture_output=True, text=True, check=True
    ).stdout
    ratios: dict[str, float] = {}
    section = ""
    for line in out.splitlines():
        for pattern in LINES:
            match = pattern.match(line)
            if match:
                ratios[f"{section} | {match['who']}"] = float(match["ratio"])
                break
        else:
            if line and not line.startswith(" "):
                section = line.strip()
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("old", help="the old tree's src/ folder")
    parser.add_argument("new", help="the new tree's src/ folder")
    parser.add_argument("script", help="a benchmark script of benchmarks/")
    parser.add_argument("--runs", type=int, default=5, help="runs per tree (default 5)")
    opts, rest = parser.parse_known_args()
    old: dict[str, list[float]] = {}
    new: dict[str, list[float]] = {}
    for _ in range(opts.runs):
        for src, store in ((opts.old, old), (opts.new, new)):
            for key, ratio in run_once(src, opts.script, rest).items():
                store.setdefault(key, []).append(ratio)
    print(f"{opts.script}: matgrad's ratio to NumPy, median of {opts.runs} interleaved runs")
    print(f"{'':70s} {'old':>7s} {'new':>7s} {'new/old':>8s}")
    for key in old:
        if key in new:
            a, b = statistics.median(old[key]), statistics.median(new[key])
            label = key if len(key) <= 70 else key[:33] + " .. " + key[-33:]
            print(f"{label:70s} {a:7.2f} {b:7.2f} {b / a:8.3f}")


if __name__ == "__main__":
    main()
