"""Run one benchmark script against two source trees of matgrad, interleaved, and compare.

Each benchmark prints lines ``  matgrad   <time> ms   <ratio>x numpy`` under a section title;
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

LINE = re.compile(r"^\s+(?P<who>matgrad\S*)\s+[\d.]+ \S+\s+(?P<ratio>[\d.]+)x")


def run_once(src: str, script: str, args: list[str]) -> dict[str, float]:
    """matgrad's ratio per (section, contender) from one run of ``script`` with ``src``."""
    env = dict(os.environ, PYTHONPATH=src)
    out = subprocess.run(
        [sys.executable, script, *args], env=env, capture_output=True, text=True, check=True
    ).stdout
    ratios: dict[str, float] = {}
    section = ""
    for line in out.splitlines():
        if line and not line.startswith(" "):
            section = line.strip()
        match = LINE.match(line)
        if match:
            ratios[f"{section} | {match['who']}"] = float(match["ratio"])
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
            print(f"{key[:70]:70s} {a:7.2f} {b:7.2f} {b / a:8.3f}")


if __name__ == "__main__":
    main()
