"""Run the end-to-end load benchmark: the floor, then ``flowengine serve`` on each store, in one run.

Every server (the floor and the engine) is pinned to core 0 (``taskset -c 0``) and the driver (callback
sender and REST stand-in, :mod:`driver`) to core 1. Each phase gets a fresh server process:

* ``floor``: the bare handler (:mod:`floor`) as fast as it answers;
* ``max``: the engine as fast as it answers, with ``--concurrency`` live calls;
* ``rate``: the engine at the issue's goal for the store (70% of the floor's rate for memory, 40% for SQLite,
  50% for Redis) with ``--concurrency`` live calls, for the latency figures;
* ``sustained``: the engine offered ``--sustained-fraction`` (80%) of what its own ``max`` phase reached:
  the latency below saturation, where an operator sizing a deployment would run it;
* ``idle``: ``--idle-sessions`` calls left waiting in the menu, then the server's RSS.

For each phase it reports callbacks/s, p50/p99/max callback latency, REST operations/s, the server's RSS
(now and peak) and its longest GC pause (``gc.callbacks``, :mod:`gcstats`), and writes all figures as JSON.

    python benchmarks/load/run.py                                  # everything (about 6 minutes)
    python benchmarks/load/run.py --rounds 3 --phases floor,max   # floor and max in turn, 3 times

With ``--rounds N`` the floor and every store's ``max`` phase run N times in turn (and the floor once more
at the end) and each ratio is taken against the floors of its own round, the one before and the one after
(the medians are reported): on a shared machine the core's speed drifts too much between the start and the
end of a long run for one floor to serve every phase.
    python benchmarks/load/run.py --stores memory --phases floor,max,rate --duration 10
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
GOALS = {"memory": 0.70, "sqlite": 0.40, "redis": 0.50}
P99_GOAL_MS = {"memory": 20.0, "sqlite": 30.0, "redis": 30.0}
REDIS = "redis://127.0.0.1:6379/9"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


SPEED_LOOP = "import time\nt = time.perf_counter()\nx = 0\nfor i in range(3_000_000): x += i\nprint(time.perf_counter() - t)"


def core_speed() -> list[float]:
    """Milliseconds each core takes for the same CPU-bound Python loop (3 million additions), run pinned.

    Recorded before and after a run so that a reader can tell a slow or unsteady machine from a slow engine:
    on the machine of the reference run a calm core took 90-155 ms; on some days the same loop took 500 ms
    and more.
    """
    speeds = []
    for core in range(min(os.cpu_count() or 1, 2)):
        done = subprocess.run(
            ["taskset", "-c", str(core), sys.executable, "-c", SPEED_LOOP], capture_output=True, text=True
        )
        speeds.append(round(float(done.stdout) * 1000, 1) if done.returncode == 0 else float("nan"))
    return speeds


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid`` (and its threads) so far."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def core_busy() -> list[float]:
    """Busy seconds of each core so far (everything but idle and iowait), from /proc/stat."""
    busy = []
    with open("/proc/stat") as handle:
        for line in handle:
            name, *values = line.split()
            if name.startswith("cpu") and name != "cpu":
                ticks = [int(v) for v in values]
                busy.append((sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK"))
    return busy


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in MiB."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) // 1024
    return out


class Server:
    """A server process pinned to core 0, stopped with SIGTERM (SIGKILL after 30 s)."""

    def __init__(self, argv: list[str], workdir: Path, name: str, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.gc_path = workdir / f"{name}.gc.json"
        self.log_path = workdir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        argv = [*argv[:2], "--gc-stats", str(self.gc_path), *argv[2:]]
        self.process = subprocess.Popen(
            ["taskset", "-c", "0", *argv], stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT, env=env
        )

    def memory(self) -> dict[str, int]:
        return proc_status(self.process.pid)

    def stop(self) -> dict[str, Any]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        try:
            return dict(json.loads(self.gc_path.read_text()))
        except (OSError, ValueError):
            return {}


def run_driver(
    args: argparse.Namespace, target_port: int, standin_port: int, extra: list[str]
) -> dict[str, Any]:
    argv = [
        "taskset", "-c", "1", sys.executable, str(HERE / "driver.py"),
        "--target", f"http://127.0.0.1:{target_port}", "--standin-port", str(standin_port),
        *(["--uvloop"] if args.driver_uvloop else []), *extra,
    ]  # fmt: skip
    limit = args.idle_timeout if "idle" in extra else args.warmup + args.duration
    done = subprocess.run(argv, capture_output=True, text=True, timeout=limit + 120, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"driver failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def engine_argv(args: argparse.Namespace, store: str, port: int, standin_port: int) -> list[str]:
    return [
        sys.executable, str(HERE / "serve.py"),
        *(["--gc-threshold", args.gc_threshold] if args.gc_threshold else []), "--",
        str(ROOT / "flows"), "--store", store, "--port", str(port),
        "--event-loop", "uvloop" if args.uvloop else "asyncio",  # the floor's loop, for a fair ratio
        "--api-url", f"http://127.0.0.1:{standin_port}/v1",
        "--user-id", "u-bench", "--token", "t-bench", "--secret", "s-bench",
        "--log-level", args.log_level,
        "--max-sessions", "0",  # the benchmark holds its calls on purpose: no admission cap
    ]  # fmt: skip


def store_url(kind: str, workdir: Path, phase: str) -> str:
    if kind == "memory":
        return "memory"
    if kind == "sqlite":
        return f"sqlite://{workdir / f'{phase}.db'}"
    return f"{REDIS}?prefix=fe-bench-{os.getpid()}-{phase}:"


def clear_redis(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    finally:
        client.close()


def phase(
    args: argparse.Namespace, workdir: Path, name: str, server_argv: list[str], target_port: int,
    standin_port: int, driver_extra: list[str], settle: float = 0.0,
) -> dict[str, Any]:  # fmt: skip
    server = Server(server_argv, workdir, name)
    try:
        started, cores, cpu = time.monotonic(), core_busy(), 0.0
        report = run_driver(args, target_port, standin_port, driver_extra)
        wall = time.monotonic() - started
        cpu = cpu_seconds(server.process.pid)
        core0 = core_busy()[0] - cores[0]
        # How busy core 0 was, and with what: a server sharing its core with other work measures low.
        report["cpu"] = {
            "wall_s": round(wall, 1),
            "server_cpu_s": round(cpu, 1),
            "core0_busy": round(core0 / wall, 2),
            "loadavg": os.getloadavg()[0],
        }
        if settle:
            time.sleep(settle)
        report["server_mib"] = server.memory()
    finally:
        report_gc = server.stop()
    report["gc"] = report_gc
    report["phase"] = name
    print(f"  {name}: {summary(report)}", file=sys.stderr, flush=True)
    return report


def summary(report: dict[str, Any]) -> str:
    stats = report.get("gc", {})
    gc = f"{stats.get('max_ms', '?')} ms"
    if "startup" in stats:  # flowengine serve's collection of start-up's objects, before it freezes them
        gc += f" (start-up {stats['startup']['max_ms']} ms)"
    mem = report.get("server_mib", {})
    if report["mode"] == "idle":
        return f"{report.get('idle_sessions')} idle sessions, RSS {mem.get('VmRSS')} MiB, GC max {gc}"
    return (
        f"{report['events_per_s']:,.0f} callbacks/s, p50 {report['p50_ms']} ms, p99 {report['p99_ms']} ms, "
        f"max {report['max_ms']} ms, REST {report['rest_ops_per_s']:,.0f}/s, RSS {mem.get('VmRSS')} MiB "
        f"(peak {mem.get('VmHWM')}), GC max {gc}, answers {report['answers']}, cpu {report.get('cpu')}"
    )


def run_floor(args: argparse.Namespace, workdir: Path, name: str, common: list[str]) -> dict[str, Any]:
    port, standin = free_port(), free_port()
    argv = [
        sys.executable, str(HERE / "floor.py"), "--port", str(port),
        "--api-url", f"http://127.0.0.1:{standin}/v1", *(["--uvloop"] if args.uvloop else []),
    ]  # fmt: skip
    extra = ["--mode", "floor", "--connections", str(args.connections), *common]
    return phase(args, workdir, name, argv, port, standin, extra)


def run_store_phase(
    args: argparse.Namespace, workdir: Path, kind: str, name: str, common: list[str], floor_rate: float,
    store_max: float, label: str = "",
) -> dict[str, Any]:  # fmt: skip
    """One phase of the engine on store ``kind``: ``max``, ``rate``, ``sustained`` or ``idle``."""
    port, standin = free_port(), free_port()
    url = store_url(kind, workdir, f"{name}{label}")
    if name == "max":
        extra = ["--mode", "engine", "--connections", str(args.connections), *common]
    elif name in ("rate", "sustained"):
        rate = (
            round(GOALS[kind] * floor_rate) if name == "rate" else round(args.sustained_fraction * store_max)
        )
        extra = [
            "--mode",
            "engine",
            "--connections",
            str(args.rate_connections),
            "--rate",
            str(rate),
            *common,
        ]
    else:
        extra = [
            "--mode", "idle", "--calls", str(args.idle_sessions), "--connections", str(args.connections),
            "--duration", str(args.idle_timeout),
        ]  # fmt: skip
    try:
        report = phase(
            args, workdir, f"{kind}-{name}{label}", engine_argv(args, url, port, standin), port, standin, extra,
            settle=2.0 if name == "idle" else 0.0,
        )  # fmt: skip
    finally:
        if kind == "redis":
            clear_redis(url.partition("prefix=")[2])
    report["store"] = kind
    if name == "sustained":
        report["fraction_of_max"] = args.sustained_fraction
    if name == "rate":
        report["goal"] = {"fraction_of_floor": GOALS[kind], "p99_ms": P99_GOAL_MS[kind]}
    return report


def run_rounds(
    args: argparse.Namespace, workdir: Path, phases: list[str], common: list[str], results: dict[str, Any]
) -> tuple[float, dict[str, float]]:
    """The floor and each store's ``max`` phase, ``--rounds`` times in turn; return the floor's rate and
    each store's maximum (medians over the rounds).

    On a shared machine the speed of the core drifts by tens of percent within minutes, so a ratio is
    only fair between phases run close together. Each store phase gets two ratios: against its round's
    floor (``of_floor``), and against the mean of that floor and the next one (``of_floor_bracketed``; a
    closing floor follows the last round); ``results["ratios"]`` holds both per round, and their medians.
    """
    floors: list[float] = []
    maxima: dict[str, list[float]] = {}
    reports: list[tuple[int, dict[str, Any]]] = []
    for number in range(1, args.rounds + 1):
        label = f"-r{number}" if args.rounds > 1 else ""
        floor = args.floor_rate
        if "floor" in phases:
            report = run_floor(args, workdir, f"floor{label}", common)
            results["phases"].append(report)
            floor = report["events_per_s"]
            floors.append(floor)
        if "max" not in phases:
            continue
        for kind in args.stores.split(","):
            report = run_store_phase(args, workdir, kind, "max", common, floor, 0.0, label)
            results["phases"].append(report)
            maxima.setdefault(kind, []).append(report["events_per_s"])
            if floor:
                report["of_floor"] = round(report["events_per_s"] / floor, 4)
                reports.append((number, report))
    closing = None
    if args.rounds > 1 and "floor" in phases and "max" in phases:
        # One more floor after the last round, so that every round's phases lie between two floors.
        report = run_floor(args, workdir, f"floor-r{args.rounds + 1}", common)
        results["phases"].append(report)
        closing = report["events_per_s"]
    ratios: dict[str, dict[str, list[float]]] = {}
    for number, report in reports:
        own = floors[number - 1] if floors else args.floor_rate  # measured, or given with --floor-rate
        after = floors[number] if number < len(floors) else closing
        bracket = (own + after) / 2 if after else own
        report["of_floor_bracketed"] = round(report["events_per_s"] / bracket, 4)
        kind_ratios = ratios.setdefault(report["store"], {"rounds": [], "bracketed": []})
        kind_ratios["rounds"].append(report["of_floor"])
        kind_ratios["bracketed"].append(report["of_floor_bracketed"])
    results["ratios"] = {
        kind: {
            "rounds": values["rounds"],
            "median": statistics.median(values["rounds"]),
            "bracketed": values["bracketed"],
            "bracketed_median": statistics.median(values["bracketed"]),
        }
        for kind, values in ratios.items()
    }
    for kind, summary_ in results["ratios"].items():
        print(
            f"  {kind}: of the floor per round {summary_['rounds']} (median {summary_['median']:.3f}); "
            f"of the mean of the floors before and after {summary_['bracketed']} "
            f"(median {summary_['bracketed_median']:.3f})",
            file=sys.stderr,
            flush=True,
        )
    floor_rate = statistics.median(floors) if floors else args.floor_rate
    return floor_rate, {kind: statistics.median(values) for kind, values in maxima.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stores", default="memory,sqlite,redis")
    parser.add_argument("--phases", default="floor,max,rate,idle")
    parser.add_argument("--concurrency", type=int, default=10_000)
    parser.add_argument(
        "--connections", type=int, default=64, help="callback connections in max/floor phases"
    )
    parser.add_argument(
        "--rate-connections", type=int, default=256, help="callback connections in rate phases"
    )
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--idle-sessions", type=int, default=100_000)
    parser.add_argument("--idle-stores", default="memory", help="stores to run the idle phase on")
    parser.add_argument("--idle-timeout", type=float, default=900.0, help="seconds allowed to start them")
    parser.add_argument(
        "--floor-rate", type=float, default=0.0, help="use this floor rate instead of measuring"
    )
    parser.add_argument(
        "--sustained-fraction",
        type=float,
        default=0.8,
        help="the sustained phase offers this fraction of the store's own max phase rate",
    )
    parser.add_argument("--uvloop", action="store_true", help="servers (engine and floor) on uvloop")
    parser.add_argument(
        "--floor-again",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the floor at the end too",
    )
    parser.add_argument("--driver-uvloop", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--log-level", default="info", help="the engine's --log-level")
    parser.add_argument(
        "--gc-threshold", metavar="G0,G1,G2", help="the engine's gc.set_threshold (experiments)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the floor and each store's max phase this many times in turn; ratios are per round",
    )
    parser.add_argument("--out", type=Path, help="write all figures here as JSON")
    args = parser.parse_args(argv)
    phases = args.phases.split(",")
    results: dict[str, Any] = {
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "phases": [],
        "core_speed_ms": {"before": core_speed()},
    }
    print(
        f"  core speed (ms for a fixed loop, per core): {results['core_speed_ms']['before']}", file=sys.stderr
    )
    common = [
        "--concurrency",
        str(args.concurrency),
        "--warmup",
        str(args.warmup),
        "--duration",
        str(args.duration),
    ]
    with tempfile.TemporaryDirectory(prefix="fe-load-") as tmp:
        workdir = Path(tmp)
        floor_rate, store_max = run_rounds(args, workdir, phases, common, results)
        for kind in args.stores.split(","):
            for name in ("rate", "sustained", "idle"):
                if name not in phases or (name == "idle" and kind not in args.idle_stores.split(",")):
                    continue
                if name == "rate" and not floor_rate:
                    raise SystemExit(
                        "the rate phase needs the floor's rate: add the floor phase or --floor-rate"
                    )
                if name == "sustained" and not store_max.get(kind):
                    raise SystemExit("the sustained phase needs the store's max phase before it")
                results["phases"].append(
                    run_store_phase(args, workdir, kind, name, common, floor_rate, store_max.get(kind, 0.0))
                )
        if "floor" in phases and args.floor_again:
            # The machine may be shared: a second floor run at the end shows how much the baseline drifted.
            results["phases"].append(run_floor(args, workdir, "floor-end", common))
    results["floor_events_per_s"] = floor_rate
    results["core_speed_ms"]["after"] = core_speed()
    text = json.dumps(results, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
