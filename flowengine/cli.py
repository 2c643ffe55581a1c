"""The ``flowengine`` command line: parses arguments and hands each subcommand its streams.

Each subcommand lives in ``flowengine.commands.<name>`` and exposes ``configure(parser)`` and
``run(args, stdout, stderr) -> int``. Modules are imported only when their command runs, so
``flowengine validate`` never pays for aiohttp.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol, TextIO, cast

from flowengine.__about__ import __version__

# (name, module, one-line help). Order is the order of `flowengine --help`.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    (
        "validate",
        "flowengine.commands.validate",
        "check flow files against the schema and the language rules",
    ),
    (
        "serve",
        "flowengine.commands.serve",
        "run the flows of a directory (on the built-in simulator without credentials)",
    ),
    ("test", "flowengine.commands.test", "run scenario files against their flows on the simulator"),
    ("call", "flowengine.commands.call", "call (or text) a flow from the terminal, on the simulator"),
    ("sim", "flowengine.commands.sim", "run the Bandwidth v1 API simulator with scripted phones"),
    ("graph", "flowengine.commands.graph", "draw a flow's states and transitions as Mermaid or DOT"),
    ("provision", "flowengine.commands.provision", "make the API account match the flows (plan, then apply)"),
    ("doctor", "flowengine.commands.doctor", "check credentials, application, numbers and the public URL"),
)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class _Command(Protocol):
    def configure(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int: ...


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of exiting, so ``main`` returns a code."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(f"{self.prog}: error: {message}")


class _UsageError(Exception):
    pass


def _build_parser(requested: str | None) -> tuple[argparse.ArgumentParser, dict[str, _Command]]:
    parser = _Parser(prog="flowengine", description="Run phone and SMS flows written as YAML.")
    parser.add_argument("--version", action="version", version=f"flowengine {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    loaded: dict[str, _Command] = {}
    for name, module_name, help_text in COMMANDS:
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == requested:
            module = cast(_Command, importlib.import_module(module_name))
            module.configure(command_parser)
            loaded[name] = module
    return parser, loaded


def main(
    argv: Sequence[str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    args_list = list(sys.argv[1:] if argv is None else argv)
    requested = args_list[0] if args_list and not args_list[0].startswith("-") else None
    parser, loaded = _build_parser(requested)
    try:
        args = parser.parse_args(args_list)
    except _UsageError as exc:
        err.write(f"{exc}\n")
        return EXIT_USAGE
    except SystemExit as exc:  # --help and --version print and exit
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help(out)
        return EXIT_USAGE
    try:
        return loaded[args.command].run(args, out, err)
    except KeyboardInterrupt:
        err.write("interrupted\n")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
