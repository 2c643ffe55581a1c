"""``flowengine test PATH...``: run scenario files against their flows on the simulator, in-process.

Prints PASS/FAIL per scenario and, for a failure, the expected step with its ``file:line:col`` beside what the
caller actually got. ``--junit FILE`` writes a JUnit report, ``--coverage`` prints per-flow coverage of states,
menu choices and transitions, ``--fail-under PCT`` fails when states or menu choices of a flow fall below it.
``--replay FILE --flow NEW.yaml`` replays a recorded call against another flow version instead.
Exit codes: 0 all passed, 1 a scenario failed (or coverage is too low), 2 usage errors or invalid files.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from flowengine.errors import ScenarioError

if TYPE_CHECKING:
    from flowengine.testing.runner import FlowLoader, RuntimeFactory

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths", nargs="*", metavar="PATH", help="scenario files or directories (searched recursively)"
    )
    parser.add_argument("--junit", metavar="FILE", help="write a JUnit XML report to FILE")
    parser.add_argument(
        "--coverage", action="store_true", help="report states, menu choices and transitions covered"
    )
    parser.add_argument(
        "--fail-under",
        type=float,
        metavar="PCT",
        help="fail when the states or menu choices covered of any flow are below PCT percent (implies --coverage)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print failures and the summary only")
    parser.add_argument("--replay", metavar="FILE", help="replay a recorded call (from `serve --record`)")
    parser.add_argument("--flow", metavar="FLOW", help="with --replay: the flow file to replay against")


def run(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    if args.replay is not None or args.flow is not None:
        if args.replay is None or args.flow is None or args.paths:
            stderr.write("flowengine test: error: --replay FILE and --flow FLOW go together, without PATHs\n")
            return EXIT_USAGE
        from flowengine.testing.replay import replay_command

        return replay_command(args.replay, args.flow, stdout, stderr)
    if not args.paths:
        stderr.write("flowengine test: error: give at least one scenario file or directory\n")
        return EXIT_USAGE
    if args.fail_under is not None and not 0 <= args.fail_under <= 100:
        stderr.write(
            f"flowengine test: error: --fail-under must be between 0 and 100, not {args.fail_under:g}\n"
        )
        return EXIT_USAGE
    return asyncio.run(run_tests(args, stdout, stderr))


async def run_tests(
    args: argparse.Namespace,
    stdout: TextIO,
    stderr: TextIO,
    *,
    runtime_factory: RuntimeFactory | None = None,
    flow_loader: FlowLoader | None = None,
) -> int:
    """Run the scenarios ``args.paths`` names and report; the factories are seams for tests."""
    from flowengine.testing import coverage as cov
    from flowengine.testing import runner
    from flowengine.testing.loader import find_scenarios, read_scenario
    from flowengine.testing.runner import ScenarioResult, format_failure, relative, run_scenario

    factory = runtime_factory or runner.default_runtime_factory
    loader = flow_loader or runner.default_flow_loader

    started = time.perf_counter()
    try:
        files = find_scenarios(args.paths)
    except ScenarioError as exc:
        for diagnostic in exc.diagnostics:
            stderr.write(f"{diagnostic}\n")
        return EXIT_USAGE
    invalid = 0
    results: list[ScenarioResult] = []
    for path in files:
        try:
            scenario = read_scenario(path)
        except ScenarioError as exc:
            invalid += 1
            stdout.write(f"ERROR {relative(str(path))}\n")
            for diagnostic in exc.diagnostics:
                stdout.write(f"  {diagnostic}\n")
            continue
        result = await run_scenario(scenario, runtime_factory=factory, flow_loader=loader)
        results.append(result)
        shown = relative(scenario.path)
        if result.passed:
            if not args.quiet:
                stdout.write(
                    f"PASS  {shown}  {scenario.name}  ({len(scenario.steps)} steps, "
                    f"{result.virtual_seconds:.1f}s virtual, {result.wall_seconds * 1000:.0f} ms)\n"
                )
        else:
            stdout.write(f"FAIL  {shown}  {scenario.name}\n{format_failure(result)}\n")
    failed = sum(1 for r in results if not r.passed)
    passed = len(results) - failed
    summary = f"{len(results) + invalid} scenarios: {passed} passed, {failed} failed"
    if invalid:
        summary += f", {invalid} invalid"
    stdout.write(f"\n{summary} in {time.perf_counter() - started:.2f}s\n")
    if args.junit:
        from flowengine.testing.junit import junit_xml

        try:
            Path(args.junit).write_text(junit_xml(results), encoding="utf-8")
        except OSError as exc:
            stderr.write(f"flowengine test: error: cannot write {args.junit!r}: {exc.strerror or exc}\n")
            return EXIT_USAGE
    status = EXIT_OK if failed == 0 else EXIT_FAILURE
    if args.coverage or args.fail_under is not None:
        reports = cov.collect(results)
        stdout.write("\n" + cov.format_coverage(reports.values()) + "\n")
        if args.fail_under is not None:
            low = [r for r in reports.values() if r.gated_percent < args.fail_under]
            for report in low:
                stdout.write(
                    f"coverage of {report.flow} is {report.gated_percent:.1f}% "
                    f"(states and menu choices), under --fail-under {args.fail_under:g}\n"
                )
            if low and status == EXIT_OK:
                status = EXIT_FAILURE
    if invalid:
        return EXIT_USAGE
    return status
