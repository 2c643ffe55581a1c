"""``flowengine doctor FLOWS_DIR``: check that a deployment can work, from the configuration's point of view.

Checks, in order: the API credentials (they can read the account), the environment's application (its
callback URLs are this configuration's), the numbers the flows claim (owned and assigned to it), the
public URL (``/healthz`` answers, the callback route takes the configured credentials, and the address
is one the API can reach), and the account's recent errors. Each check prints ``ok``, ``warn`` or
``FAIL`` with what to do. Settings are those of ``flowengine serve``.

Exit codes: 0 when nothing failed (warnings allowed), 1 when a check failed, 2 for usage errors.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import ipaddress
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, TextIO
from urllib.parse import urlsplit

import aiohttp

from flowengine.catapult.client import CatapultClient, RetryPolicy
from flowengine.commands.provision import SETTINGS, load_settings
from flowengine.config import ServeConfig, add_arguments
from flowengine.errors import CatapultAPIError, CatapultError, ConfigError, FlowError
from flowengine.flow import read_flows
from flowengine.provision import Desired, desired_account, plan_account, read_account, redact

Verdict = Literal["ok", "warn", "FAIL"]
_Noter = Callable[[Verdict, str, str], None]
PROBE_TIMEOUT = 5.0
RECENT_ERRORS = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Finding:
    verdict: Verdict
    check: str
    message: str

    def __str__(self) -> str:
        return f"{self.verdict:<4} {self.check}: {self.message}"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("flows_dir", metavar="FLOWS_DIR", help="directory of flow files (*.yaml)")
    parser.add_argument(
        "--environment",
        default="production",
        metavar="NAME",
        help="the environment whose application is checked, flowengine-NAME (default: production)",
    )
    add_arguments(parser, only=SETTINGS)


def run(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from flowengine.server.logs import configure_logging

    configure_logging("console", "error", stderr)
    return doctor_command(args, stdout, stderr, os.environ)


def doctor_command(
    args: argparse.Namespace, stdout: TextIO, stderr: TextIO, environ: dict[str, str] | os._Environ[str]
) -> int:
    """``run`` with the environment as a seam, for tests."""
    try:
        config = load_settings(args, environ, "flowengine doctor")
        if not Path(args.flows_dir).is_dir():
            raise ConfigError(f"{args.flows_dir!r} is not a directory of flow files")
        flows = read_flows(args.flows_dir)
        desired = desired_account(flows, config.public_url, config.callback_auth, args.environment)
    except ConfigError as exc:
        stderr.write(f"flowengine doctor: error: {exc}\n")
        return 2
    except FlowError as exc:
        stderr.write(f"{exc}\nflowengine doctor: the flows have errors; fix them first\n")
        return 1
    findings = asyncio.run(diagnose(config, desired, stdout))
    failed = sum(1 for f in findings if f.verdict == "FAIL")
    warned = sum(1 for f in findings if f.verdict == "warn")
    stdout.write(f"{failed} failed, {warned} warning(s), {len(findings) - failed - warned} ok\n")
    return 1 if failed else 0


async def diagnose(config: ServeConfig, desired: Desired, out: TextIO | None = None) -> list[Finding]:
    """Run every check; each finding is also written to ``out`` as soon as it is known."""
    findings: list[Finding] = []

    def note(verdict: Verdict, check: str, message: str) -> None:
        finding = Finding(verdict, check, message)
        findings.append(finding)
        if out is not None:
            out.write(f"{finding}\n")
            out.flush()

    async with aiohttp.ClientSession() as http:
        client = CatapultClient(
            http,
            user_id=config.user_id,
            token=config.token,
            secret=config.secret,
            base_url=config.api_url,
            timeout=config.api_timeout,
            retry=RetryPolicy(attempts=2, base_delay=0.2),
        )
        if await _credentials(client, config, note):
            await _account(client, desired, note)
            await _errors(client, note)
        await _public_url(http, config, note)
    return findings


async def _credentials(client: CatapultClient, config: ServeConfig, note: _Noter) -> bool:
    try:
        account = await client.get_account()
    except CatapultAPIError as exc:
        if exc.status in (401, 403):
            note(
                "FAIL",
                "credentials",
                f"the API refused them ({exc.status} {exc.code}): check the user id, token and secret",
            )
        else:
            note("FAIL", "credentials", f"the API answered {exc.status} {exc.code}: {exc.message}")
        return False
    except CatapultError as exc:
        note("FAIL", "credentials", f"cannot reach the API at {config.api_url}: {exc}")
        return False
    balance = account.get("balance", "?")
    note(
        "ok",
        "credentials",
        f"user {config.user_id} reads its account ({account.get('accountType', '?')}, balance {balance})",
    )
    return True


async def _account(client: CatapultClient, desired: Desired, note: _Noter) -> None:
    name = desired.application_name
    try:
        observed = await read_account(client)
        plan = plan_account(desired, observed, order=False)
    except (CatapultError, ConfigError) as exc:
        note("FAIL", "application", str(exc))
        return
    fix = f"run `flowengine provision` with --environment {desired.environment}"
    for change in plan.changes:
        if change.kind == "create-application":
            note("FAIL", "application", f"there is no application {name!r}: {fix}")
        elif change.kind == "update-application":
            for key, (old, new) in change.fields.items():
                note(
                    "FAIL",
                    "application",
                    f"{key} of {name!r} is {_show(old)}, this configuration needs {_show(new)}: {fix}",
                )
        elif change.kind == "assign-number":
            where = f"on application {change.previous!r}" if change.previous else "unassigned"
            if plan.application_id is not None:
                note(
                    "FAIL",
                    "numbers",
                    f"{change.target} ({', '.join(change.flows)}) is {where}, not on {name!r}: {fix}",
                )
    if plan.application_id is not None and not any(c.kind == "update-application" for c in plan.changes):
        note(
            "ok",
            "application",
            f"{name!r} ({plan.application_id}) sends events to this configuration's callback URLs",
        )
    for entry in plan.notes:
        if entry.kind == "not-owned":
            note(
                "FAIL",
                "numbers",
                f"{entry.number} ({', '.join(entry.flows)}) is not on the account: {fix} --order",
            )
        elif entry.kind == "unclaimed":
            note(
                "warn",
                "numbers",
                f"{entry.number} is on {name!r} but no flow claims it (calls to it will be refused)",
            )
    failing = {c.target for c in plan.changes if c.kind == "assign-number"} | {
        n.number for n in plan.notes if n.kind == "not-owned"
    }
    assigned = len([n for n in desired.numbers if n not in failing])
    if plan.application_id is not None and desired.numbers and not failing:
        note("ok", "numbers", f"all {assigned} claimed number(s) are on {name!r}")
    if not desired.numbers:
        note("warn", "numbers", "no flow claims a number; only outbound flows (the executions API) can run")


async def _errors(client: CatapultClient, note: _Noter) -> None:
    try:
        errors = await client.list_errors({"size": "100"})
    except CatapultError as exc:
        note("warn", "errors", f"could not read the account's errors: {exc}")
        return
    now = time.time()
    recent = [e for e in errors if now - _epoch(e.get("time")) < RECENT_ERRORS]
    if not recent:
        note("ok", "errors", "no errors in the account's error log in the last 24 hours")
        return
    latest = recent[0]
    note(
        "warn",
        "errors",
        f"{len(recent)} error(s) in the last 24 hours; latest: {latest.get('code')}: {latest.get('message')}",
    )


def _epoch(value: object) -> float:
    if isinstance(value, int | float):
        return value / 1000.0 if value > 1e11 else float(value)  # the reference's sample is in ms
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return 0.0
    return 0.0


def _unreachable_host(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain") or host.endswith((".local", ".localhost", ".internal")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return not address.is_global


async def _public_url(http: aiohttp.ClientSession, config: ServeConfig, note: _Noter) -> None:
    public = config.public_url.rstrip("/")
    host = urlsplit(public).hostname or ""
    api_host = urlsplit(config.api_url).hostname or ""
    if _unreachable_host(host) and not _unreachable_host(api_host):
        note(
            "FAIL", "public URL", f"{host} is a local address: the API at {api_host} cannot send events to it"
        )
    elif urlsplit(public).scheme != "https" and not _unreachable_host(host):
        note(
            "warn",
            "public URL",
            f"{redact(public)} is plain http: callbacks (and their credentials) travel unencrypted",
        )
    timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT)
    try:
        async with http.get(f"{public}/healthz", timeout=timeout) as response:
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        note(
            "FAIL", "public URL", f"{public}/healthz cannot be reached from here: {type(exc).__name__}: {exc}"
        )
        return
    if status != 200:
        note(
            "FAIL",
            "public URL",
            f"{public}/healthz answered {status}, not 200: is flowengine serve behind it?",
        )
        return
    note("ok", "public URL", f"{public}/healthz answers 200")
    headers = {}
    if config.callback_auth is not None:
        pair = ":".join(config.callback_auth).encode("latin-1", errors="replace")
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    try:
        async with http.post(
            f"{public}/callbacks/voice", json={}, headers=headers, timeout=timeout
        ) as response:
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        note("FAIL", "callbacks", f"{public}/callbacks/voice cannot be reached: {type(exc).__name__}: {exc}")
        return
    if status in (401, 403):
        note(
            "FAIL",
            "callbacks",
            f"{public}/callbacks/voice refused this configuration's callback credentials ({status})",
        )
    elif status in (404, 405):
        note(
            "FAIL",
            "callbacks",
            f"{public}/callbacks/voice answered {status}: the public URL does not lead to flowengine serve",
        )
    elif status >= 500:
        note("FAIL", "callbacks", f"{public}/callbacks/voice answered {status}")
    else:
        note("ok", "callbacks", f"{public}/callbacks/voice takes events (an empty one got {status})")


def _show(value: object) -> str:
    if value is None:
        return "(unset)"
    return redact(value) if isinstance(value, str) else repr(value)
