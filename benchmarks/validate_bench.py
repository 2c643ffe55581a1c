"""Benchmark: validate 1,000 generated 200-line flows with the full pipeline (load, schema, build, lint).

Run from the repository root::

    python benchmarks/validate_bench.py [--files 1000] [--states 19]

It writes the flows to a temporary directory, then times ``check_file`` over all of them (the work
``flowengine validate`` does per file) and prints files per second, the total, and a breakdown by phase.
Every generated flow is different (names, texts, numbers), so caches keyed by source text do not flatter
the figure. The goal of issue 2 is the whole set in under 5 seconds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from flowengine.flow import check_file, lint_flow, load_flow, validate_flow


def generate(index: int, states: int) -> str:
    """One realistic voice flow of about ``10 * states + 10`` lines, unique to ``index``."""
    lines = [
        "# yaml-language-server: $schema=../schemas/flow.schema.json",
        f"flow: bench-{index}",
        "version: 1",
        f'description: "Generated benchmark flow number {index}."',
        "kind: voice",
        f'numbers: ["+1919{index:07d}"]',
        f"vars: {{company: Company{index}, attempts: 0, agent_{index}: '+1984{index:07d}'}}",
        "env: [CRM_URL]",
        "initial: s0",
        "states:",
    ]
    for n in range(states):
        nxt = f"s{n + 1}" if n + 1 < states else "goodbye"
        if n % 3 == 0:
            lines += [
                f"  s{n}:",
                f'    description: "Menu {n} of flow {index}"',
                "    menu:",
                f'      prompt: "Welcome to {{{{ company }}}}, menu {n} of {index}. Press 1 or 2."',
                f'      choices: {{"1": {nxt}, "2": {{goto: goodbye, do: [{{set: {{choice_{n}: "{{{{ attempts + {n} }}}}"}}}}]}}}}',
                f'      noinput: {{reprompt: "Sorry {index}, nothing heard.", max: 3, then: goodbye}}',
                f'      nomatch: {{reprompt: "Sorry {index}, not an option.", max: 2, then: goodbye}}',
                "      inter_digit_timeout: 5s",
                "      into: choice",
                "",
            ]
        elif n % 3 == 1:
            lines += [
                f"  s{n}:",
                "    do:",
                f'      - speak: {{text: "Step {n} for {{{{ call.from }}}} at {index}.", voice: julie}}',
                f'      - http: {{method: POST, url: "{{{{ env.CRM_URL }}}}/flows/{index}/{n}", json: {{step: {n}}}, into: r{n}}}',
                "    on:",
                f'      http.ok: {{when: "r{n}.ok and attempts < {n + 3}", goto: {nxt}}}',
                "      http.error: goodbye",
                f"    after: {{{n + 10}s: goodbye}}",
                "",
                "",
            ]
        else:
            lines += [
                f"  s{n}:",
                "    do:",
                f'      - dial: {{to: "{{{{ agent_{index} }}}}", as: agent, timeout: 30s}}',
                "    on:",
                f"      agent.answer: {{do: [{{bridge: [caller, agent]}}], goto: {nxt}}}",
                "      agent.timeout: goodbye",
                "      agent.hangup:",
                f'        - {{when: "attempts > {n}", goto: goodbye}}',
                f"        - {{do: [{{log: 'retry {n} of {index}'}}], goto: s{n}}}",
                "",
            ]
    lines += [
        "  goodbye:",
        '    do: [{speak: "Goodbye from {{ company }}."}, hangup]',
        "    final: true",
        "on:",
        "  hangup: end",
        '  error: {do: [{log: "{{ event.message }}"}], goto: goodbye}',
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--states", type=int, default=19, help="states per flow (19 gives ~200 lines)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for index in range(args.files):
            path = Path(tmp) / f"flow-{index:04d}.yaml"
            path.write_text(generate(index, args.states), encoding="utf-8")
            paths.append(path)
        lines = paths[0].read_text().count("\n")
        check_file(paths[0])  # compile the schema validators once, as a long-running process would
        started, cpu_started = time.perf_counter(), time.process_time()
        problems = sum(len(check_file(path).diagnostics) for path in paths)
        total, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        if problems:
            print(f"generated flows have {problems} diagnostics; fix the generator", file=sys.stderr)
            return 1
        phases = {"load": 0.0, "validate+build": 0.0, "lint": 0.0}
        for path in paths[:200]:
            t0 = time.perf_counter()
            document = load_flow(path)
            t1 = time.perf_counter()
            validate_flow(document)
            t2 = time.perf_counter()
            assert document.flow is not None
            lint_flow(document.flow, document)
            t3 = time.perf_counter()
            phases["load"] += t1 - t0
            phases["validate+build"] += t2 - t1
            phases["lint"] += t3 - t2
    print(
        f"{args.files} flows of {lines} lines: {total:.2f} s wall ({args.files / total:.0f} files/s), "
        f"{cpu:.2f} s CPU ({args.files / cpu:.0f} files/s)"
    )
    sample = min(200, args.files)
    print(
        "per file: "
        + ", ".join(f"{name} {1000 * seconds / sample:.2f} ms" for name, seconds in phases.items())
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
