"""Callback latency and CPU per callback of two source trees at the same load, side by side on one core.

For judging a change on a machine whose speed swings within minutes: both engines run at the same time,
pinned to core 0, each offered ``--rate`` callbacks/s by its own driver on core 1, so whatever the machine does
during the window it does to both. With ``--rate 0`` each is driven as fast as it answers (the ``max``
phase's load), and CPU per callback (each server's CPU seconds in the window, from ``/proc``, over the
callbacks it answered in it) is the figure to read: a CPU-bound server alone on the core answers
1 / (CPU per callback) callbacks per second. The tree to compare with is a checkout of the older code (``git worktree
add /tmp/before <commit>``); the engine then runs with ``PYTHONPATH`` pointing at it.

Which server starts first matters: with the same tree in both places, the second one's median latency
came out 18-25% higher (``results/2026-12-06g-create-paired-latency.json``). So the pairs alternate the
order, and the figure reported is, per couple of pairs (one each way), the geometric mean of the ratio
after/before, in which that bias cancels. Below 1.0 the current tree is faster.

    git worktree add /tmp/before f834fb7
    python benchmarks/load/ab_latency.py --before /tmp/before --store sqlite --rate 350 --couples 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from paired import collect_reports, wait_healthy  # noqa: E402
from run import ROOT, Server, clear_redis, cpu_seconds, engine_argv, free_port, store_url  # noqa: E402

RATIOS = ("p50_ms", "p99_ms", "cpu_us_per_callback")


def driver_process(args: argparse.Namespace, port: int, standin: int, out: Path) -> subprocess.Popen[bytes]:
    argv = [
        "taskset", "-c", "1", sys.executable, str(HERE / "driver.py"),
        "--target", f"http://127.0.0.1:{port}", "--standin-port", str(standin), "--mode", "engine",
        "--concurrency", str(args.concurrency), "--connections", str(args.connections),
        "--rate", str(args.rate), "--warmup", str(args.warmup), "--duration", str(args.duration), "--uvloop",
    ]  # fmt: skip
    with open(out, "wb") as handle:
        return subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)


def one_pair(args: argparse.Namespace, workdir: Path, label: str, order: list[str]) -> dict[str, Any]:
    """Both trees at once, started in ``order``; each one's driver report."""
    trees = {"before": str(Path(args.before).resolve()), "after": str(ROOT)}
    servers: dict[str, Server] = {}
    ports: dict[str, tuple[int, int]] = {}
    urls: dict[str, str] = {}
    try:
        for name in order:
            port, standin = free_port(), free_port()
            ports[name] = (port, standin)
            urls[name] = store_url(args.store, workdir, f"{label}-{name}")
            env = {**os.environ, "PYTHONPATH": trees[name]}
            argv = engine_argv(args, urls[name], port, standin)
            servers[name] = Server(argv, workdir, f"{label}-{name}", env=env)
        for name in order:
            wait_healthy(ports[name][0])
        outputs = {name: workdir / f"{label}-{name}.driver.json" for name in order}
        drivers = {name: driver_process(args, *ports[name], outputs[name]) for name in order}
        started = time.monotonic()
        time.sleep(max(0.0, started + args.warmup - time.monotonic()))
        cpu_start = {name: cpu_seconds(server.process.pid) for name, server in servers.items()}
        time.sleep(max(0.0, started + args.warmup + args.duration - time.monotonic()))
        cpu_end = {name: cpu_seconds(server.process.pid) for name, server in servers.items()}
        reports = collect_reports(drivers, outputs, args.warmup + args.duration + 180)
    finally:
        for server in servers.values():
            server.stop()
        if args.store == "redis":
            for url in urls.values():
                clear_redis(url.partition("prefix=")[2])
    return {
        name: {
            **{key: report[key] for key in ("events_per_s", "p50_ms", "p99_ms", "max_ms", "by_type")},
            "cpu_us_per_callback": round(
                (cpu_end[name] - cpu_start[name]) / max(report["events"], 1) * 1e6, 1
            ),
        }
        for name, report in reports.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="a checkout of the code to compare with")
    parser.add_argument("--store", default="sqlite", choices=["memory", "sqlite", "redis"])
    parser.add_argument(
        "--rate",
        type=float,
        default=350.0,
        help="callbacks/s offered to each engine (0: as fast as answered)",
    )
    parser.add_argument("--concurrency", type=int, default=1_000)
    parser.add_argument("--connections", type=int, default=256)
    parser.add_argument("--warmup", type=float, default=15.0)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--couples", type=int, default=2, help="couples of pairs, one in each order")
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    args.gc_threshold = None
    if not (Path(args.before) / "flowengine").is_dir():
        parser.error(f"--before {args.before!r} holds no flowengine/ (make one with git worktree add)")
    results: dict[str, Any] = {"settings": {k: str(v) for k, v in vars(args).items()}, "couples": []}
    with tempfile.TemporaryDirectory(prefix="fe-ab-") as tmp:
        for couple in range(1, args.couples + 1):
            pairs = {
                "before-first": one_pair(args, Path(tmp), f"c{couple}a", ["before", "after"]),
                "after-first": one_pair(args, Path(tmp), f"c{couple}b", ["after", "before"]),
            }
            ratios = {
                key: math.sqrt(math.prod(p["after"][key] / p["before"][key] for p in pairs.values()))
                for key in RATIOS
            }
            results["couples"].append({"pairs": pairs, "after_over_before": ratios})
            print(
                f"  couple {couple}: after/before p50 {ratios['p50_ms']:.3f}, p99 {ratios['p99_ms']:.3f}, "
                f"CPU per callback {ratios['cpu_us_per_callback']:.3f}",
                file=sys.stderr,
                flush=True,
            )
            time.sleep(1)
    for key in RATIOS:
        results[f"median_after_over_before_{key}"] = statistics.median(
            c["after_over_before"][key] for c in results["couples"]
        )
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k.startswith("median")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
