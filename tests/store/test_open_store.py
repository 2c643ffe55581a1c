"""``open_store`` turns a ``--store`` URL into the right store, or says what is wrong with the URL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from flowengine.errors import ConfigError
from flowengine.store import MemoryStore, Store, open_store
from flowengine.store.redis import RedisStore
from flowengine.store.sqlite import SQLiteStore


async def test_memory_opens_a_memory_store() -> None:
    store = await open_store("memory")
    assert isinstance(store, MemoryStore)
    assert isinstance(store, Store)
    assert store.description == "memory"


async def test_sqlite_with_three_slashes_takes_an_absolute_path(tmp_path: Path) -> None:
    store = await open_store(f"sqlite://{tmp_path}/state.db", retention=60)
    try:
        assert isinstance(store, SQLiteStore)
        assert (tmp_path / "state.db").exists()
        assert store.description == f"sqlite://{tmp_path}/state.db"
    finally:
        await store.close()


async def test_sqlite_with_two_slashes_takes_a_path_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = await open_store("sqlite://state.db")
    try:
        assert os.path.exists(tmp_path / "state.db")
    finally:
        await store.close()


async def test_sqlite_expands_a_home_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    store = await open_store("sqlite://~/state.db")
    try:
        assert store.description == f"sqlite://{tmp_path}/state.db"
    finally:
        await store.close()


def test_importing_the_store_package_leaves_the_drivers_unloaded() -> None:
    code = "import sys, flowengine.store; print(sorted({'redis', 'sqlite3'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


async def test_redis_takes_its_key_prefix_from_the_query(redis_url: str) -> None:
    store = await open_store(redis_url)
    try:
        assert isinstance(store, RedisStore)
        assert store.description == redis_url
        lock = await store.acquire("s-1", owner="t")
        await store.commit(lock, snapshot={}, routes=["call:x"])
        prefix = redis_url.partition("prefix=")[2]
        assert await store._client.exists(f"{prefix}s:s-1", f"{prefix}r:call:x") == 2
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        pytest.param("postgres://db/x", "is not supported", id="unknown-scheme"),
        pytest.param("sqlite:", "is not supported", id="no-slashes"),
        pytest.param("sqlite://", "name a database file", id="no-path"),
        pytest.param("sqlite:///:memory:", "name a database file", id="sqlite-memory"),
        pytest.param("/var/lib/state.db", "is not supported", id="bare-path"),
        pytest.param("", "is not supported", id="empty"),
    ],
)
async def test_a_bad_url_is_a_config_error_that_lists_the_supported_forms(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        await open_store(url)
    assert repr(url) in str(caught.value)


async def test_a_redis_url_with_a_bad_port_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="store URL"):
        await open_store("redis://127.0.0.1:notaport/0")


@pytest.mark.parametrize("name", ["retention", "dedup_ttl"])
async def test_durations_must_be_positive(name: str) -> None:
    with pytest.raises(ValueError, match=f"{name} must be a positive"):
        await open_store("memory", **{name: 0})  # type: ignore[arg-type]
