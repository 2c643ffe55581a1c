"""The floor and the engine on the same core at the same time: CPU per callback, side by side.

``run.py`` runs the floor and the engine one after the other; on a host whose speed swings by half within
minutes, the two phases do not see the same machine. Here both servers run together, pinned to core 0, each
driven as fast as it answers by its own driver on core 1, and each one's CPU time over the same window is
read from ``/proc``. Whatever the machine does during the window, it does to both.

For each server, CPU per callback is its CPU seconds in the window divided by the callbacks it answered in
the window. A server alone on the core, CPU-bound, answers 1 / (CPU per callback) callbacks per second, so
the engine's share of the floor's callbacks/second is the floor's CPU per callback divided by the engine's.
That is the figure reported, per pair and as a median over ``--pairs`` pairs, each pair with fresh
processes.

The pairs take turns at starting first (the floor in odd pairs, the engine in even ones): the server
started first, with its driver, was seen to answer faster (``ab_latency.py``), so use an even ``--pairs``.

Limits: the two servers share the core's caches (each sees the other's misses), and two drivers share core
1. The solo runs (:mod:`run`) stay the issue's measure; this is what a noisy day can still compare fairly.

    python benchmarks/load/paired.py --stores memory --pairs 3
    python benchmarks/load/paired.py --stores memory,sqlite,redis --uvloop --warmup 40 --duration 40
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import (  # noqa: E402
    GOALS,
    ROOT,
    Server,
    clear_redis,
    cpu_seconds,
    engine_argv,
    free_port,
    store_url,
)


def driver_process(
    args: argparse.Namespace, mode: str, port: int, standin: int, out: Path
) -> subprocess.Popen[bytes]:
    argv = [
        "taskset", "-c", "1", sys.executable, str(HERE / "driver.py"),
        "--target", f"http://127.0.0.1:{port}", "--standin-port", str(standin), "--mode", mode,
        "--concurrency", str(args.concurrency), "--connections", str(args.connections),
        "--warmup", str(args.warmup), "--duration", str(args.duration),
        *(["--uvloop"] if args.driver_uvloop else []),
    ]  # fmt: skip
    with open(out, "wb") as handle:
        return subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)


def wait_healthy(port: int, timeout: float = 60.0) -> None:
    """Wait until the server on ``port`` answers ``/healthz``, so that both drivers start together."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"server on port {port} did not become healthy in {timeout:g} s")
        time.sleep(0.1)


def collect_reports(
    drivers: dict[str, subprocess.Popen[bytes]], outputs: dict[str, Path], timeout: float
) -> dict[str, Any]:
    """Wait for each driver; its report (the last line of its output), by name."""
    reports = {}
    for name, driver in drivers.items():
        if driver.wait(timeout) != 0:
            raise SystemExit(f"{name} driver failed:\n{outputs[name].read_text()[-3000:]}")
        reports[name] = json.loads(outputs[name].read_text().strip().splitlines()[-1])
    return reports


def pair(
    args: argparse.Namespace, kind: str, workdir: Path, label: str, engine_first: bool
) -> dict[str, Any]:
    """One pair: the floor and the engine on store ``kind`` together; their CPU per callback and the ratio.

    ``engine_first``: start the engine and its driver before the floor and its driver (see the module doc).
    """
    floor_port, floor_standin, engine_port, engine_standin = (free_port() for _ in range(4))
    floor_argv = [
        sys.executable, str(HERE / "floor.py"), "--port", str(floor_port),
        "--api-url", f"http://127.0.0.1:{floor_standin}/v1", *(["--uvloop"] if args.uvloop else []),
    ]  # fmt: skip
    url = store_url(kind, workdir, label)
    order = ["engine", "floor"] if engine_first else ["floor", "engine"]
    argvs = {"floor": floor_argv, "engine": engine_argv(args, url, engine_port, engine_standin)}
    ports = {"floor": (floor_port, floor_standin), "engine": (engine_port, engine_standin)}
    servers = {name: Server(argvs[name], workdir, f"{label}-{name}") for name in order}
    try:
        for name in order:
            wait_healthy(ports[name][0])
        outputs = {name: workdir / f"{label}-{name}.driver.json" for name in servers}
        drivers = {name: driver_process(args, name, *ports[name], outputs[name]) for name in order}
        started = time.monotonic()
        # The drivers measure from their own start (within a few ms of each other) for the same window.
        time.sleep(max(0.0, started + args.warmup - time.monotonic()))
        cpu_start = {name: cpu_seconds(server.process.pid) for name, server in servers.items()}
        time.sleep(max(0.0, started + args.warmup + args.duration - time.monotonic()))
        cpu_end = {name: cpu_seconds(server.process.pid) for name, server in servers.items()}
        reports = collect_reports(drivers, outputs, args.warmup + args.duration + 180)
    finally:
        for server in servers.values():
            server.stop()
        if kind == "redis":
            clear_redis(url.partition("prefix=")[2])
    figures: dict[str, Any] = {}
    for name, report in reports.items():
        cpu = cpu_end[name] - cpu_start[name]
        figures[name] = {
            "callbacks_per_s": report["events_per_s"],
            "cpu_s": round(cpu, 2),
            "cpu_us_per_callback": round(cpu / max(report["events"], 1) * 1e6, 1),
            "p50_ms": report["p50_ms"],
            "p99_ms": report["p99_ms"],
            "answers": report["answers"],
            "errors": report["errors"],
        }
    share = figures["floor"]["cpu_us_per_callback"] / figures["engine"]["cpu_us_per_callback"]
    figures["engine_share_of_floor"] = round(share, 4)
    figures["started_first"] = order[0]
    print(
        f"  {label}: floor {figures['floor']['cpu_us_per_callback']} µs and {kind} "
        f"{figures['engine']['cpu_us_per_callback']} µs of CPU per callback "
        f"({figures['floor']['callbacks_per_s']:,.0f} and {figures['engine']['callbacks_per_s']:,.0f}/s "
        f"on the shared core): {share:.1%} of the floor (goal {GOALS[kind]:.0%})",
        file=sys.stderr,
        flush=True,
    )
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stores", default="memory", help="memory, sqlite, redis (comma-separated)")
    parser.add_argument("--pairs", type=int, default=3, help="pairs per store, each with fresh processes")
    parser.add_argument("--concurrency", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--warmup", type=float, default=40.0)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--uvloop", action="store_true", help="both servers on uvloop")
    parser.add_argument("--driver-uvloop", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--log-level", default="info", help="the engine's --log-level")
    parser.add_argument("--out", type=Path, help="write all figures here as JSON")
    args = parser.parse_args(argv)
    args.gc_threshold = None  # engine_argv's experiment knob: serve's own settings here
    kinds = [kind.strip() for kind in args.stores.split(",") if kind.strip()]
    unknown = [kind for kind in kinds if kind not in GOALS]
    if unknown:
        raise SystemExit(f"--stores: unknown {unknown}; expected {', '.join(GOALS)}")
    results: dict[str, Any] = {"settings": {k: v for k, v in vars(args).items() if k != "out"}}
    with tempfile.TemporaryDirectory(prefix="fe-paired-") as tmp:
        for kind in kinds:
            pairs = [
                pair(args, kind, Path(tmp), f"{kind}-p{number}", engine_first=number % 2 == 0)
                for number in range(1, args.pairs + 1)
            ]
            shares = [figures["engine_share_of_floor"] for figures in pairs]
            results[kind] = {"pairs": pairs, "shares": shares, "median_share": statistics.median(shares)}
            print(f"  {kind}: {shares} (median {statistics.median(shares):.1%})", file=sys.stderr, flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps({kind: results[kind]["median_share"] for kind in kinds}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
