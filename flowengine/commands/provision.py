"""``flowengine provision FLOWS_DIR --public-url URL``: make the account match the flows.

Prints the plan first, then applies it after a confirmation (or at once with ``--yes``); ``--dry-run``
stops after the plan. Numbers the account lacks are searched and ordered only with ``--order``. The API
credentials and URL come from the same settings as ``flowengine serve`` (flags or ``FLOWENGINE_*``).

Exit codes: 0 when the account matches the flows (already, or after applying); 1 when something is left
that provisioning could not do (a claimed number not owned, not available, a refused request, a plan not
confirmed) or a flow file is invalid; 2 for usage and configuration errors.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import TextIO

from flowengine.config import ServeConfig, add_arguments, config_from
from flowengine.errors import CatapultError, ConfigError, FlowError
from flowengine.flow import read_flows
from flowengine.provision import Desired, apply_plan, desired_account, make_plan, render_plan

SETTINGS = (
    "public_url",
    "api_url",
    "user_id",
    "token",
    "secret",
    "callback_user",
    "callback_password",
    "api_timeout",
)
"""The settings of ``flowengine serve`` that provisioning reads."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("flows_dir", metavar="FLOWS_DIR", help="directory of flow files (*.yaml)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and change nothing")
    parser.add_argument("--yes", action="store_true", help="apply the plan without asking")
    parser.add_argument(
        "--order",
        action="store_true",
        help="search and order claimed numbers the account lacks (costs money)",
    )
    parser.add_argument(
        "--environment",
        default="production",
        metavar="NAME",
        help="the environment; its application is flowengine-NAME (default: production)",
    )
    add_arguments(parser, only=SETTINGS)


def run(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from flowengine.server.logs import configure_logging

    # Retries and refusals are worth a line on stderr; the plan itself is the output.
    configure_logging("console", "warning", stderr)
    return provision_command(args, stdout, stderr, sys.stdin, os.environ)


def load_settings(
    args: argparse.Namespace, environ: dict[str, str] | os._Environ[str], command: str
) -> ServeConfig:
    """The serve settings a provisioning command needs: real credentials and a public URL.

    Raises:
        ConfigError: a setting is malformed or missing.
    """
    config = config_from(args, environ, flows_dir=Path(args.flows_dir))
    if config.uses_simulator:
        raise ConfigError(
            f"{command} needs API credentials: set --user-id, --token and --secret (or FLOWENGINE_USER_ID, "
            "FLOWENGINE_TOKEN, FLOWENGINE_SECRET); for a running `flowengine sim`, also --api-url"
        )
    if not config.public_url:
        raise ConfigError(
            f"{command} needs the URL at which the API reaches flowengine serve: --public-url URL "
            "(or FLOWENGINE_PUBLIC_URL)"
        )
    return config


def provision_command(
    args: argparse.Namespace,
    stdout: TextIO,
    stderr: TextIO,
    stdin: TextIO,
    environ: dict[str, str] | os._Environ[str],
) -> int:
    """``run`` with its input and environment as seams, for tests."""
    try:
        config = load_settings(args, environ, "flowengine provision")
    except ConfigError as exc:
        stderr.write(f"flowengine provision: error: {exc}\n")
        return 2
    if not Path(args.flows_dir).is_dir():
        stderr.write(f"flowengine provision: error: {args.flows_dir!r} is not a directory of flow files\n")
        return 2
    try:
        flows = read_flows(args.flows_dir)
    except FlowError as exc:
        stderr.write(f"{exc}\nflowengine provision: the flows have errors; nothing was changed\n")
        return 1
    try:
        desired = desired_account(flows, config.public_url, config.callback_auth, args.environment)
    except ConfigError as exc:
        stderr.write(f"flowengine provision: error: {exc}\n")
        return 2
    try:
        return asyncio.run(_provision(config, desired, args, stdout, stderr, stdin))
    except ConfigError as exc:
        stderr.write(f"flowengine provision: error: {exc}\n")
        return 1
    except CatapultError as exc:
        stderr.write(f"flowengine provision: the API refused: {exc}\n")
        return 1


async def _provision(
    config: ServeConfig,
    desired: Desired,
    args: argparse.Namespace,
    stdout: TextIO,
    stderr: TextIO,
    stdin: TextIO,
) -> int:
    import aiohttp

    from flowengine.catapult.client import CatapultClient

    async with aiohttp.ClientSession() as http:
        client = CatapultClient(
            http,
            user_id=config.user_id,
            token=config.token,
            secret=config.secret,
            base_url=config.api_url,
            timeout=config.api_timeout,
        )
        plan = await make_plan(client, desired, order=args.order)
        stdout.write("\n".join(render_plan(plan, desired)) + "\n")
        stdout.flush()
        failed = 1 if plan.problems else 0
        if not plan.changes:
            return failed
        if args.dry_run:
            stdout.write("Dry run: nothing was changed.\n")
            return failed
        if not args.yes and not _confirmed(stdout, stdin):
            stderr.write("flowengine provision: not applied (answer 'yes', or pass --yes)\n")
            return 1
        for line in await apply_plan(client, plan, desired):
            stdout.write(f"  {line}\n")
        stdout.write(f"Applied {len(plan.changes)} change(s).\n")
        return failed


def _confirmed(stdout: TextIO, stdin: TextIO) -> bool:
    stdout.write("Apply these changes? Type 'yes' to go on: ")
    stdout.flush()
    answer = stdin.readline()
    stdout.write("\n" if not answer.endswith("\n") else "")
    return answer.strip().lower() in ("y", "yes")
