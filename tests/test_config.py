"""Settings of ``flowengine serve``: flags win over FLOWENGINE_* variables, which win over defaults; bad values
are ConfigErrors naming the flag or variable."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from flowengine.config import DEFAULT_STORE, ServeConfig, add_arguments, config_from
from flowengine.errors import ConfigError


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def build(argv: tuple[str, ...] = (), env: dict[str, str] | None = None) -> ServeConfig:
    return config_from(parse(*argv), env or {}, flows_dir=Path("flows"))


class TestSources:
    def test_defaults_use_the_simulator_and_console_logs(self) -> None:
        config = build()
        assert config.uses_simulator
        assert (config.host, config.port, config.store) == ("127.0.0.1", 8080, DEFAULT_STORE)
        assert config.log_format == "console"
        assert len(config.executions_token) >= 24

    def test_environment_variables_are_read(self) -> None:
        env = {
            "FLOWENGINE_PORT": "9000",
            "FLOWENGINE_USER_ID": "u-1",
            "FLOWENGINE_TOKEN": "t",
            "FLOWENGINE_SECRET": "s",
            "FLOWENGINE_STORE": "memory",
            "FLOWENGINE_API_TIMEOUT": "2.5",
        }
        config = build(env=env)
        assert (config.port, config.user_id, config.store, config.api_timeout) == (9000, "u-1", "memory", 2.5)
        assert not config.uses_simulator
        assert config.log_format == "json"

    def test_a_flag_wins_over_its_variable(self) -> None:
        config = build(
            ("--port", "7000", "--simulator"), {"FLOWENGINE_PORT": "9000", "FLOWENGINE_SIMULATOR": "no"}
        )
        assert config.port == 7000
        assert config.simulator

    def test_secrets_never_show_in_the_repr(self) -> None:
        config = build(
            env={"FLOWENGINE_USER_ID": "u", "FLOWENGINE_TOKEN": "tok-1", "FLOWENGINE_SECRET": "sec-1"}
        )
        assert "sec-1" not in repr(config)
        assert "tok-1" not in repr(config)
        assert config.executions_token not in repr(config)


class TestErrors:
    @pytest.mark.parametrize(
        ("argv", "env", "message"),
        [
            pytest.param(
                ("--port", "eighty"), {}, "--port='eighty': expected a whole number", id="port-flag"
            ),
            pytest.param((), {"FLOWENGINE_PORT": "x"}, "FLOWENGINE_PORT='x'", id="port-env"),
            pytest.param(("--port", "70000"), {}, "port 70000 is out of range", id="port-range"),
            pytest.param((), {"FLOWENGINE_SIMULATOR": "maybe"}, "use true or false", id="bool"),
            pytest.param(("--log-format", "xml"), {}, "log format 'xml'", id="log-format"),
            pytest.param(("--log-level", "loud"), {}, "log level 'loud'", id="log-level"),
            pytest.param(("--user-id", "u-1"), {}, "also set --token, --secret", id="partial-credentials"),
            pytest.param(("--callback-user", "a"), {}, "--callback-password", id="half-callback-auth"),
            pytest.param(("--public-url", "flows.example.com"), {}, "must be an http", id="public-url"),
            pytest.param(("--max-body", "10"), {}, "too small", id="max-body"),
            pytest.param(("--api-timeout", "0"), {}, "must be positive", id="timeout"),
            pytest.param(
                ("--api-connections", "0"), {}, "API connections 0 must be at least 1", id="connections"
            ),
            pytest.param(
                ("--http-connections", "0"),
                {},
                "http connections 0 must be at least 1",
                id="http-connections",
            ),
        ],
    )
    def test_bad_values_name_the_setting(
        self, argv: tuple[str, ...], env: dict[str, str], message: str
    ) -> None:
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
            build(argv, env)
