"""Run ``flowengine serve`` for the load benchmark, with GC pause statistics.

    python benchmarks/load/serve.py [--gc-stats PATH] -- FLOWS_DIR --store memory --port 8080 ...

Everything after ``--`` goes to ``flowengine serve`` unchanged (its event loop: ``--event-loop``); the server
is the real one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ours, rest = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gc-stats", metavar="PATH", help="write GC pause statistics here at exit")
    parser.add_argument("--gc-threshold", metavar="G0,G1,G2", help="gc.set_threshold() first (experiments)")
    args = parser.parse_args(ours)
    if args.gc_threshold:
        import gc

        gc.set_threshold(*(int(part) for part in args.gc_threshold.split(",")))
    if args.gc_stats:
        import gcstats

        gcstats.install(args.gc_stats, startup_until_freeze=True)
    from flowengine.cli import main as flowengine_main

    return flowengine_main(["serve", *rest])


if __name__ == "__main__":
    raise SystemExit(main())
