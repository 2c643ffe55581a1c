"""``flowengine graph FLOW...``: print flows' state diagrams as Mermaid or Graphviz DOT, or a Markdown page."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TextIO, cast

from flowengine.errors import FlowError
from flowengine.flow import read_flow
from flowengine.flow.graph import GraphFormat, render_graph, render_markdown
from flowengine.flow.model import Flow


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("flows", type=Path, nargs="+", metavar="FLOW", help="flow files to draw")
    parser.add_argument(
        "--format", choices=("mermaid", "dot"), default="mermaid", help="diagram language (default: mermaid)"
    )
    parser.add_argument(
        "--markdown",
        action="store_true",
        help="write one Markdown page with a Mermaid diagram per flow (for docs and READMEs)",
    )
    parser.add_argument("-o", "--output", type=Path, help="write to this file instead of stdout")


def run(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    paths: list[Path] = args.flows
    missing = [path for path in paths if not path.is_file()]
    if missing:
        for path in missing:
            stderr.write(f"flowengine graph: {str(path)!r} is not a readable file\n")
        return 2
    if len(paths) > 1 and not args.markdown and args.format == "dot":
        stderr.write("flowengine graph: DOT draws one flow at a time; pass one FLOW or use --markdown\n")
        return 2
    flows: list[tuple[str, Flow]] = []
    failed = False
    for path in paths:
        try:
            flows.append((path.as_posix(), read_flow(path)))
        except FlowError as exc:
            stderr.write(f"{exc}\n")
            failed = True
    if failed:
        return 1
    if args.markdown:
        text = render_markdown(flows)
    else:
        text = "\n".join(render_graph(flow, cast(GraphFormat, args.format)) for _, flow in flows)
    if args.output is None:
        stdout.write(text)
        return 0
    try:
        args.output.write_text(text, encoding="utf-8")
    except OSError as exc:
        stderr.write(f"flowengine graph: cannot write {str(args.output)!r}: {exc.strerror}\n")
        return 2
    return 0
