"""Settings of ``flowengine serve``: from command-line flags, else ``FLOWENGINE_*`` environment variables, else
defaults; checked once, into one frozen :class:`ServeConfig`.

Every setting has a flag and a variable (``--api-url`` / ``FLOWENGINE_API_URL``); a flag given on the command
line wins over the variable. Bad values raise :class:`~flowengine.errors.ConfigError` naming the setting, the
value and the fix.
"""

from __future__ import annotations

import argparse
import re
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from flowengine.catapult.client import DEFAULT_BASE_URL
from flowengine.errors import ConfigError
from flowengine.typing import Seconds

LogFormat = Literal["json", "console"]

_HOST_PATTERN: Final = re.compile(r"(\*\.)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?\Z|\[[0-9a-f:.]+\]\Z")

ENV_PREFIX: Final = "FLOWENGINE_"
DEFAULT_STORE: Final = "sqlite://flowengine.db"
DEFAULT_MAX_BODY: Final = 256 * 1024
DEFAULT_MAX_SESSIONS: Final = 10_000
DEFAULT_MAX_PENDING: Final = 5_000
# Connections are opened only as requests need them, so the cap matters only under load; at 100 (aiohttp's
# default) the requests of a saturated instance waited for a connection and their backlog made the collector
# pause for up to 260 ms (benchmarks/RESULTS.md).
DEFAULT_API_CONNECTIONS: Final = 500
DEFAULT_HTTP_CONNECTIONS: Final = 500  # the same reasoning, for the hosts of flows' http actions


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting: its attribute name, flag, help text and kind."""

    name: str
    help: str
    kind: Literal["str", "int", "float", "bool"] = "str"
    default: str | int | float | bool | None = None
    secret: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


SETTINGS: Final[tuple[Setting, ...]] = (
    Setting("host", "address to listen on", default="127.0.0.1"),
    Setting("port", "port to listen on (0 picks a free one)", "int", 8080),
    Setting(
        "public_url",
        "the URL at which the API reaches this server (default: http://HOST:PORT); put TLS in front of it",
    ),
    Setting("api_url", "base URL of the Bandwidth v1 API", default=DEFAULT_BASE_URL),
    Setting("user_id", "the account's user id (u-...)"),
    Setting("token", "the API token", secret=True),
    Setting("secret", "the API secret", secret=True),
    Setting("simulator", "run against the built-in simulator even if credentials are set", "bool", False),
    Setting("sim_port", "port of the embedded simulator (0 picks a free one)", "int", 0),
    Setting(
        "store", "where sessions live: memory, sqlite://PATH or redis://HOST:PORT/DB", default=DEFAULT_STORE
    ),
    Setting("callback_user", "require HTTP Basic auth on callbacks with this user name"),
    Setting("callback_password", "the password of --callback-user", secret=True),
    Setting(
        "executions_token",
        "bearer token of the executions API (default: a random one, printed at start-up)",
        secret=True,
    ),
    Setting("max_body", "largest callback body accepted, in bytes", "int", DEFAULT_MAX_BODY),
    Setting("api_timeout", "timeout of each API request, in seconds", "float", 10.0),
    Setting(
        "api_connections",
        "most connections open to the API at once; further requests wait for one",
        "int",
        DEFAULT_API_CONNECTIONS,
    ),
    Setting(
        "reload_interval", "how often to look for changed flow files, in seconds (0: never)", "float", 1.0
    ),
    Setting("log_format", "json (production) or console (development; default with the simulator)"),
    Setting("log_level", "debug, info, warning or error", default="info"),
    Setting(
        "event_loop",
        "asyncio, uvloop (pip install 'flowengine[uvloop]') or auto: uvloop when it is installed",
        default="auto",
    ),
    Setting("instance_id", "this instance's name in session locks (default: a random one)"),
    Setting(
        "http_allow_hosts",
        "hosts a flow's http action may reach, comma-separated; '*.example.com' covers its subdomains "
        "(default: any host)",
    ),
    Setting("http_timeout", "longest timeout of a flow's http action, in seconds", "float", 10.0),
    Setting("http_max_bytes", "largest answer a flow's http action reads, in bytes", "int", 1024 * 1024),
    Setting(
        "http_connections",
        "most connections flows' http actions keep open at once, all hosts together; further requests wait "
        "for one",
        "int",
        DEFAULT_HTTP_CONNECTIONS,
    ),
    Setting(
        "max_sessions",
        "most sessions this instance runs at once; new calls above it are rejected (0: no limit)",
        "int",
        DEFAULT_MAX_SESSIONS,
    ),
    Setting(
        "max_pending",
        "most jobs (callbacks, timers and the commands they decided) queued or running at once; above it a "
        "new call or execution is answered 503 overloaded (0: no limit)",
        "int",
        DEFAULT_MAX_PENDING,
    ),
    Setting("busy_message", "text answered to a new conversation refused by --max-sessions (default: none)"),
    Setting("mask_numbers", "mask phone numbers in logs (all but the last 4 digits)", "bool", False),
    Setting(
        "record",
        "save each call's callbacks and the commands they led to under this directory, one JSON-lines file "
        "per session, for `flowengine test --replay` (numbers masked with --mask-numbers)",
    ),
)


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """Everything ``flowengine serve`` and ``create_app`` need, checked."""

    flows_dir: Path
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""
    api_url: str = DEFAULT_BASE_URL
    user_id: str = ""
    token: str = field(default="", repr=False)
    secret: str = field(default="", repr=False)
    simulator: bool = False
    sim_port: int = 0
    store: str = DEFAULT_STORE
    callback_user: str = ""
    callback_password: str = field(default="", repr=False)
    executions_token: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    max_body: int = DEFAULT_MAX_BODY
    api_timeout: Seconds = 10.0
    api_connections: int = DEFAULT_API_CONNECTIONS
    reload_interval: Seconds = 1.0
    log_format: LogFormat = "json"
    log_level: str = "info"
    event_loop: str = "auto"
    instance_id: str = field(default_factory=lambda: "fe-" + secrets.token_hex(4))
    http_allow_hosts: str = ""
    http_timeout: Seconds = 10.0
    http_max_bytes: int = 1024 * 1024
    http_connections: int = DEFAULT_HTTP_CONNECTIONS
    max_sessions: int = DEFAULT_MAX_SESSIONS
    max_pending: int = DEFAULT_MAX_PENDING
    busy_message: str = ""
    mask_numbers: bool = False
    record: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port {self.port!r} is out of range; use 0..65535")
        if not 0 <= self.sim_port <= 65535:
            raise ConfigError(f"sim port {self.sim_port!r} is out of range; use 0..65535")
        if self.max_body < 1024:
            raise ConfigError(f"max body {self.max_body!r} is too small; use at least 1024 bytes")
        if self.api_timeout <= 0:
            raise ConfigError(f"API timeout {self.api_timeout!r} must be positive")
        if self.api_connections < 1:
            raise ConfigError(f"API connections {self.api_connections!r} must be at least 1")
        if self.http_timeout <= 0:
            raise ConfigError(f"http timeout {self.http_timeout!r} must be positive")
        if self.http_max_bytes < 1:
            raise ConfigError(f"http max bytes {self.http_max_bytes!r} must be at least 1")
        if self.http_connections < 1:
            raise ConfigError(f"http connections {self.http_connections!r} must be at least 1")
        if self.max_sessions < 0:
            raise ConfigError(f"max sessions {self.max_sessions!r} must not be negative (0: no limit)")
        if self.max_pending < 0:
            raise ConfigError(f"max pending {self.max_pending!r} must not be negative (0: no limit)")
        for host in self.allowed_hosts:
            if not _HOST_PATTERN.match(host):
                raise ConfigError(
                    f"--http-allow-hosts: {host!r} is not a host name; write 'api.example.com' or "
                    "'*.example.com', comma-separated"
                )
        if self.reload_interval < 0:
            raise ConfigError(f"reload interval {self.reload_interval!r} must not be negative")
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise ConfigError(f"log level {self.log_level!r}: use debug, info, warning or error")
        if self.event_loop not in ("auto", "asyncio", "uvloop"):
            raise ConfigError(f"event loop {self.event_loop!r}: use auto, asyncio or uvloop")
        if bool(self.callback_user) != bool(self.callback_password):
            raise ConfigError("set both --callback-user and --callback-password, or neither")
        if ":" in self.callback_user:
            raise ConfigError("the callback user name must not contain ':'")
        if not self.executions_token:
            raise ConfigError("the executions token must not be empty")
        if self.public_url:
            parts = urlsplit(self.public_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(
                    f"public URL {self.public_url!r} must be an http:// or https:// URL, "
                    "e.g. 'https://flows.example.com'"
                )
        if not self.uses_simulator:
            missing = [n for n in ("user_id", "token", "secret") if not getattr(self, n)]
            if missing:  # only reachable when some but not all credentials are given
                flags = ", ".join("--" + n.replace("_", "-") for n in missing)
                raise ConfigError(f"API credentials are incomplete: also set {flags} (or use --simulator)")

    @property
    def uses_simulator(self) -> bool:
        """True with ``--simulator`` or when no API credential at all is configured."""
        return self.simulator or not (self.user_id or self.token or self.secret)

    @property
    def allowed_hosts(self) -> tuple[str, ...]:
        """The entries of ``http_allow_hosts``, lower-cased; empty when any host is allowed."""
        return tuple(h.strip().lower() for h in self.http_allow_hosts.split(",") if h.strip())

    @property
    def callback_auth(self) -> tuple[str, str] | None:
        return (self.callback_user, self.callback_password) if self.callback_user else None


def add_arguments(parser: argparse.ArgumentParser, only: Collection[str] | None = None) -> None:
    """Add a flag for every setting (or for the settings named in ``only``); their defaults are None so that
    unset flags fall back to variables."""
    for setting in SETTINGS:
        if only is not None and setting.name not in only:
            continue
        env_note = f" [env {setting.env}]"
        if setting.kind == "bool":
            parser.add_argument(
                setting.flag, action="store_const", const=True, default=None, help=setting.help + env_note
            )
            continue
        default = "" if setting.secret or setting.default is None else f" (default {setting.default})"
        parser.add_argument(
            setting.flag,
            default=None,
            metavar=setting.name.upper(),
            help=setting.help + default + env_note,
        )


def config_from(args: argparse.Namespace, environ: Mapping[str, str], *, flows_dir: Path) -> ServeConfig:
    """Build the configuration: a flag given on the command line, else its variable, else the default.

    Raises:
        ConfigError: a value has the wrong form; the message names the flag and the variable.
    """
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        raw = getattr(args, setting.name, None)
        source = setting.flag
        if raw is None:
            raw = environ.get(setting.env)
            source = setting.env
        if raw is None or raw == "":
            continue
        values[setting.name] = _convert(setting, raw, source)
    log_format = values.pop("log_format", None)
    if log_format is not None and log_format not in ("json", "console"):
        raise ConfigError(f"log format {log_format!r}: use json or console")
    config = ServeConfig(flows_dir=flows_dir, **values)
    if log_format is None:
        log_format = "console" if config.uses_simulator else "json"
    return replace(config, log_format=log_format)


def _convert(setting: Setting, raw: object, source: str) -> Any:
    if setting.kind == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{source}={raw!r}: use true or false")
    if setting.kind == "int":
        try:
            return int(str(raw))
        except ValueError:
            raise ConfigError(f"{source}={raw!r}: expected a whole number") from None
    if setting.kind == "float":
        try:
            return float(str(raw))
        except ValueError:
            raise ConfigError(f"{source}={raw!r}: expected a number") from None
    return str(raw)
