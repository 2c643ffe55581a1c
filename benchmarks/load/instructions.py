"""Instructions per callback, end to end: the floor and ``flowengine serve`` counted by cachegrind.

Wall-clock figures need a steady machine; on a shared host whose speed swings by half within minutes they
neither confirm nor refute a change. Instructions do not swing: this runs each server under
``valgrind --tool=cachegrind --cache-sim=no`` on core 0, drives it with the load driver (:mod:`driver`,
core 1) for a short and a long run, and divides the difference in instructions by the difference in
callbacks answered, so start-up and shutdown cancel out. It reports instructions per callback for the
floor and the engine, and their ratio: what the engine's share of the floor would be if both ran at the
same instructions per second.

That is a proxy, not the issue's figure: it leaves out the kernel (sockets), cache misses and, since the
server runs some 50 times slower under valgrind while the driver does not, it sees fuller event-loop
iterations than a real run; with Redis, only the engine's process is counted, not the Redis server's. It
is the instrument for judging a change to the engine on a noisy day; the wall-clock run (:mod:`run`)
stays the measure.

    python benchmarks/load/instructions.py                       # floor and memory store
    python benchmarks/load/instructions.py --targets floor,memory,sqlite --callbacks 1500,4500
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import ROOT, clear_redis, engine_argv, free_port, store_url  # noqa: E402

STORES = ("memory", "sqlite", "redis")


def count(
    args: argparse.Namespace, target: str, callbacks: int, workdir: Path, label: str
) -> tuple[int, int, dict[str, Any]]:
    """Run ``target`` under cachegrind for about ``callbacks`` callbacks: (instructions, answered, report)."""
    port, standin = free_port(), free_port()
    if target == "floor":
        server = [
            sys.executable, str(HERE / "floor.py"), "--port", str(port),
            "--api-url", f"http://127.0.0.1:{standin}/v1",
        ]  # fmt: skip
        mode = "floor"
    else:
        url = store_url(target, workdir, label)
        server = engine_argv(
            argparse.Namespace(gc_threshold=None, uvloop=False, log_level=args.log_level), url, port, standin
        )
        mode = "engine"
    out = workdir / f"{label}.cachegrind"
    log = open(workdir / f"{label}.log", "wb")  # noqa: SIM115 - closed below
    valgrind = [
        "taskset", "-c", "0", "valgrind", "--tool=cachegrind", "--cache-sim=no",
        f"--cachegrind-out-file={out}",
    ]  # fmt: skip
    process = subprocess.Popen(
        [*valgrind, *server],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    try:
        driver = [
            "taskset", "-c", "1", sys.executable, str(HERE / "driver.py"),
            "--target", f"http://127.0.0.1:{port}", "--standin-port", str(standin), "--mode", mode,
            "--concurrency", str(args.concurrency), "--connections", str(args.connections),
            "--warmup", "0", "--duration", "3600", "--max-events", str(callbacks),
            "--startup-timeout", "600", "--drain", "60",
        ]  # fmt: skip
        done = subprocess.run(driver, capture_output=True, text=True, timeout=3600, cwd=ROOT)
        if done.returncode != 0:
            raise SystemExit(f"driver failed ({done.returncode}):\n{done.stderr[-3000:]}")
        report = dict(json.loads(done.stdout.strip().splitlines()[-1]))
        time.sleep(1.0)  # let the last commands of the last callbacks finish
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(300)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        if target == "redis":
            clear_redis(url.partition("prefix=")[2])
    total = None
    for line in out.read_text().splitlines():
        if line.startswith("summary:"):
            total = int(line.split()[1])
    if total is None:
        raise SystemExit(f"no cachegrind summary in {out} (see {workdir / f'{label}.log'})")
    answered = sum(report["answers"].values())
    return total, answered, report


def measure(args: argparse.Namespace, target: str, workdir: Path) -> dict[str, Any]:
    short, long = args.callbacks
    low, low_n, _ = count(args, target, short, workdir, f"{target}-short")
    high, high_n, report = count(args, target, long, workdir, f"{target}-long")
    per = (high - low) / (high_n - low_n)
    figures = {
        "instructions_per_callback": round(per),
        "runs": [{"callbacks": low_n, "instructions": low}, {"callbacks": high_n, "instructions": high}],
        "answers": report["answers"],
        "rest_by_kind": report["rest_by_kind"],
    }
    print(f"  {target}: {per:,.0f} instructions per callback", file=sys.stderr, flush=True)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--targets", default="floor,memory", help="floor and/or stores: memory, sqlite, redis"
    )
    parser.add_argument("--concurrency", type=int, default=200, help="live calls (they cycle many times)")
    parser.add_argument("--connections", type=int, default=16, help="callback connections")
    parser.add_argument(
        "--callbacks", default="1500,4500", help="callbacks in the short and the long run: SHORT,LONG"
    )
    parser.add_argument("--log-level", default="info", help="the engine's --log-level")
    parser.add_argument("--out", type=Path, help="write the figures here as JSON")
    parser.add_argument(
        "--keep", type=Path, metavar="DIR", help="keep cachegrind's files (for cg_annotate) and logs here"
    )
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    short, _, long = args.callbacks.partition(",")
    args.callbacks = (int(short), int(long))
    if not 0 < args.callbacks[0] < args.callbacks[1]:
        raise SystemExit("--callbacks: expected SHORT,LONG with 0 < SHORT < LONG")
    targets = [name.strip() for name in args.targets.split(",") if name.strip()]
    unknown = [name for name in targets if name != "floor" and name not in STORES]
    if unknown:
        raise SystemExit(f"--targets: unknown {unknown}; expected floor, {', '.join(STORES)}")
    results: dict[str, Any] = {"settings": {k: v for k, v in vars(args).items() if k not in ("out", "keep")}}
    with tempfile.TemporaryDirectory(prefix="fe-instr-") as tmp:
        workdir = Path(tmp) if args.keep is None else args.keep
        workdir.mkdir(parents=True, exist_ok=True)
        for target in targets:
            results[target] = measure(args, target, workdir)
    floor = results.get("floor", {}).get("instructions_per_callback")
    if floor:
        for target in targets:
            if target != "floor":
                share = floor / results[target]["instructions_per_callback"]
                results[target]["floor_share"] = round(share, 3)
                print(f"  {target}: {share:.1%} of the floor (instructions)", file=sys.stderr)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
