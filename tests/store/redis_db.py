"""The test Redis database (127.0.0.1:6379, database 9) for the tests that need one: each uses a key prefix
of its own and deletes its keys afterwards. Where the server is missing they fail when ``CI`` is set and skip
otherwise.
"""

from __future__ import annotations

import os

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379
REDIS_DB = 9


def redis_missing(reason: str) -> None:
    """Fail loudly in CI, where the Redis tests must run; skip on a developer's machine."""
    message = f"Redis is needed at {REDIS_HOST}:{REDIS_PORT} for the Redis store tests: {reason}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message + " (CI is set, so this fails rather than skips; .ci/run starts Redis)")
    pytest.skip(message)


async def redis_available() -> None:
    client = aioredis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB, socket_connect_timeout=1)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        redis_missing(str(exc))
    finally:
        await client.aclose()


async def delete_prefix(prefix: str) -> None:
    client = aioredis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
