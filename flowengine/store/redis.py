"""The store for several instances: Redis through redis-py asyncio, each write one Lua script.

Scripts asked for in one iteration of the event loop are sent together, packed by the store, as one pipeline
on a connection of redis-py's pool (see ``RedisStore._eval``); other reads go through redis-py's client.

Layout, under a key prefix (``flowengine:`` unless the URL says ``?prefix=``)::

    fence                 global counter; every lock acquisition takes the next value as its fencing token
    lock:<sid>            "<token>|<owner>", SET NX PX: the lock with its expiry
    fence:<sid>           the token of the latest acquisition; a commit must carry it
    s:<sid>               hash: snapshot, version, updated_at, ended_at
    ol:<sid> / oh:<sid>   the outbox: list of entry ids in order / hash id -> command JSON
    pending               set of session ids whose outbox is not empty
    r:<route key>         session id;   rk:<sid>  set of the session's route keys
    timers                sorted set, member "<len(sid)>:<sid><key>", score = when it may fire (its due time,
                          or the end of a claim's lease);   tdue  hash member -> due;   tk:<sid> its members
    d:<dedup key>         "1" with an expiry
    sessions / ended      sorted sets: session id by last update / by end time

Ended sessions' keys expire after the retention; times come from the Redis server's clock. Scripts name keys
they compute from the prefix, so this works on a single Redis (or a primary with replicas), not a Cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from flowengine.errors import ConfigError, DuplicateEventError, StaleLockError, StoreError
from flowengine.store._common import (
    BUSY,
    Busy,
    busy_route_message,
    check_changes,
    check_ttl,
    dumps,
    loads_object,
    snapshot_text,
    wait_for,
    wait_for_lock,
)
from flowengine.store.base import (
    DEFAULT_DEDUP_TTL,
    DEFAULT_LOCK_TTL,
    DEFAULT_LOCK_WAIT,
    DEFAULT_RETENTION,
    DEFAULT_TIMER_LEASE,
    Lock,
    OutboxEntry,
    PendingOutbox,
    SessionRecord,
    Timer,
)
from flowengine.typing import Seconds, SnapshotData

T = TypeVar("T")

DEFAULT_PREFIX = "flowengine:"
DEFAULT_COMMAND_TIMEOUT: Seconds = 5.0
_FENCE_GRACE_MS = 3_600_000  # how long past its lock's expiry a session's fencing token is remembered

_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local token = redis.call('INCR', KEYS[3])
redis.call('SET', KEYS[1], token .. '|' .. ARGV[2], 'PX', ARGV[1])
redis.call('SET', KEYS[2], token, 'PX', tonumber(ARGV[1]) + tonumber(ARGV[3]))
return token
"""

_RENEW = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'PX', ARGV[3])
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[3]) + tonumber(ARGV[4]))
return 1
"""

# KEYS: lock:<sid> fence:<sid> fence s:<sid> ol:<sid> oh:<sid>   ARGV: ttl_ms owner grace_ms
_BEGIN = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {0} end
local token = redis.call('INCR', KEYS[3])
redis.call('SET', KEYS[1], token .. '|' .. ARGV[2], 'PX', ARGV[1])
redis.call('SET', KEYS[2], token, 'PX', tonumber(ARGV[1]) + tonumber(ARGV[3]))
return {token, redis.call('HGETALL', KEYS[4]), redis.call('LRANGE', KEYS[5], 0, -1), redis.call('HGETALL', KEYS[6])}
"""

# KEYS: r:<route key> fence   ARGV: prefix ttl_ms owner grace_ms
# Returns {} when the route leads to no session, {0, sid} while that session's lock is busy, else
# {token, sid, session hash, outbox order, outbox hash}.
_BEGIN_ROUTE = """
local sid = redis.call('GET', KEYS[1])
if not sid then return {} end
local s = ARGV[1] .. 's:' .. sid
if redis.call('EXISTS', s) == 0 then return {} end
local lock = ARGV[1] .. 'lock:' .. sid
if redis.call('EXISTS', lock) == 1 then return {0, sid} end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', lock, token .. '|' .. ARGV[3], 'PX', ARGV[2])
redis.call('SET', ARGV[1] .. 'fence:' .. sid, token, 'PX', tonumber(ARGV[2]) + tonumber(ARGV[4]))
return {token, sid, redis.call('HGETALL', s), redis.call('LRANGE', ARGV[1] .. 'ol:' .. sid, 0, -1),
        redis.call('HGETALL', ARGV[1] .. 'oh:' .. sid)}
"""

# KEYS: r:<route key>   ARGV: prefix
_LOOKUP = """
local sid = redis.call('GET', KEYS[1])
if sid and redis.call('EXISTS', ARGV[1] .. 's:' .. sid) == 1 then return sid end
return false
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""

# KEYS: fence:<sid> s:<sid> ol:<sid> oh:<sid> rk:<sid> tk:<sid> pending timers sessions ended d:<key> tdue
#       lock:<sid> fence r:<route key>
# ARGV: token snapshot sid prefix ended(0/1) retention_ms dedup_ttl_ms has_dedup(0/1) owner ttl_ms grace_ms
#       release(0/1) version  n_done id*  n_outbox (id cmd)*  n_routes key*  n_unroutes key*  n_cancel member*
#       n_set (member due)*
# An empty token takes the lock first. With an empty version it creates the session (``create``; -3 when the
# session exists or its lock is held); with a version it moves the session on (``advance``; -3 unless the
# route key leads to it, it is live, at that version, and unlocked). Either returns its new lock's token. With
# a token: -1 for a stale lock, else the new version. -2 for a duplicate in every case; -3 and -2 write nothing.
_COMMIT = """
local token, snapshot, sid, prefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local ending, retention, dedup_ttl, has_dedup = ARGV[5] == '1', tonumber(ARGV[6]), ARGV[7], ARGV[8] == '1'
local locking, expected = token == '', ARGV[13]
if not locking then
    if redis.call('GET', KEYS[1]) ~= token then return -1 end
elseif redis.call('EXISTS', KEYS[13]) == 1 then
    return -3
elseif expected == '' then
    if redis.call('EXISTS', KEYS[2]) == 1 then return -3 end
else
    if redis.call('GET', KEYS[15]) ~= sid then return -3 end
    local state = redis.call('HMGET', KEYS[2], 'version', 'ended_at')
    if state[1] ~= expected or state[2] then return -3 end
end
if has_dedup and redis.call('EXISTS', KEYS[11]) == 1 then return -2 end
if locking then
    token = tostring(redis.call('INCR', KEYS[14]))
    redis.call('SET', KEYS[1], token)
end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
if ARGV[12] == '1' then
    redis.call('DEL', KEYS[13])
else
    redis.call('SET', KEYS[13], token .. '|' .. ARGV[9], 'PX', ARGV[10])
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[10]) + tonumber(ARGV[11]))
local version = redis.call('HINCRBY', KEYS[2], 'version', 1)
if version == 1 then redis.call('DEL', KEYS[3], KEYS[4]) end
local i = 14
local n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
    redis.call('LREM', KEYS[3], 0, ARGV[i]); redis.call('HDEL', KEYS[4], ARGV[i])
    i = i + 1
end
local ended_at = redis.call('HGET', KEYS[2], 'ended_at')
if not ended_at and ending then
    ended_at = string.format('%.6f', now)
    redis.call('HSET', KEYS[2], 'ended_at', ended_at)
end
redis.call('HSET', KEYS[2], 'snapshot', snapshot, 'updated_at', string.format('%.6f', now))
redis.call('ZADD', KEYS[9], now, sid)
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
    local id, cmd = ARGV[i], ARGV[i + 1]; i = i + 2
    redis.call('LREM', KEYS[3], 0, id)
    redis.call('RPUSH', KEYS[3], id)
    redis.call('HSET', KEYS[4], id, cmd)
end
if redis.call('LLEN', KEYS[3]) > 0 then redis.call('SADD', KEYS[7], sid) else redis.call('SREM', KEYS[7], sid) end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
    local key = ARGV[i]; i = i + 1
    local old = redis.call('GET', prefix .. 'r:' .. key)
    if old and old ~= sid then redis.call('SREM', prefix .. 'rk:' .. old, key) end
    redis.call('SET', prefix .. 'r:' .. key, sid)
    redis.call('SADD', KEYS[5], key)
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
    local key = ARGV[i]; i = i + 1
    if redis.call('GET', prefix .. 'r:' .. key) == sid then redis.call('DEL', prefix .. 'r:' .. key) end
    redis.call('SREM', KEYS[5], key)
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
    redis.call('ZREM', KEYS[8], ARGV[i]); redis.call('HDEL', KEYS[12], ARGV[i]); redis.call('SREM', KEYS[6], ARGV[i])
    i = i + 1
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
    redis.call('ZADD', KEYS[8], ARGV[i + 1], ARGV[i]); redis.call('HSET', KEYS[12], ARGV[i], ARGV[i + 1])
    redis.call('SADD', KEYS[6], ARGV[i])
    i = i + 2
end
if has_dedup then redis.call('SET', KEYS[11], '1', 'PX', dedup_ttl) end
if ended_at then
    for _, member in ipairs(redis.call('SMEMBERS', KEYS[6])) do
        redis.call('ZREM', KEYS[8], member); redis.call('HDEL', KEYS[12], member)
    end
    redis.call('DEL', KEYS[6])
    redis.call('ZADD', KEYS[10], tonumber(ended_at), sid)
    local left = math.max(1, math.floor((tonumber(ended_at) - now) * 1000 + retention))
    for _, key in ipairs(redis.call('SMEMBERS', KEYS[5])) do
        if redis.call('GET', prefix .. 'r:' .. key) == sid then redis.call('PEXPIRE', prefix .. 'r:' .. key, left) end
    end
    for _, k in ipairs({KEYS[2], KEYS[3], KEYS[4], KEYS[5]}) do redis.call('PEXPIRE', k, left) end
end
if locking then return tonumber(token) end
return version
"""

# KEYS: ol:<sid> oh:<sid> pending   ARGV: sid id*
_MARK_DONE = """
for i = 2, #ARGV do
    redis.call('LREM', KEYS[1], 0, ARGV[i])
    redis.call('HDEL', KEYS[2], ARGV[i])
end
if redis.call('LLEN', KEYS[1]) == 0 then redis.call('SREM', KEYS[3], ARGV[1]) end
return 1
"""

# KEYS: ol:<sid> oh:<sid> pending lock:<sid>   ARGV: sid "<token>|<owner>" id*
_FINISH = """
for i = 3, #ARGV do
    redis.call('LREM', KEYS[1], 0, ARGV[i])
    redis.call('HDEL', KEYS[2], ARGV[i])
end
if #ARGV > 2 and redis.call('LLEN', KEYS[1]) == 0 then redis.call('SREM', KEYS[3], ARGV[1]) end
if redis.call('GET', KEYS[4]) == ARGV[2] then redis.call('DEL', KEYS[4]) end
return 1
"""

# KEYS: timers tdue   ARGV: member due now lease_end
_CLAIM = """
local due = redis.call('HGET', KEYS[2], ARGV[1])
local fires_at = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not due or not fires_at or tonumber(due) ~= tonumber(ARGV[2]) or tonumber(fires_at) > tonumber(ARGV[3]) then
    return 0
end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
return 1
"""


_Pending = tuple[tuple[str | bytes | int, ...], "asyncio.Future[Any]"]
"""A script call waiting to be sent: its command (EVALSHA and arguments) and its caller's future."""


_pack = cast(Callable[[tuple[str | bytes | int, ...]], bytes], hiredis.pack_command)
"""A command in the Redis protocol (RESP), packed in C by hiredis: 31,000 instructions for a typical script
call against 70,000 for the Python packing it replaced (``benchmarks/load/results/2026-12-07b-redis-pack.json``)."""


def _fail(batch: Sequence[_Pending], error: Exception) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(error)


def _timer_member(session_id: str, key: str) -> str:
    return f"{len(session_id)}:{session_id}{key}"


def _split_member(member: str) -> tuple[str, str]:
    length, _, rest = member.partition(":")
    size = int(length)
    return rest[:size], rest[size:]


def _ms(seconds: Seconds) -> int:
    return max(1, round(seconds * 1000))


def _pairs(flat: Sequence[str]) -> dict[str, str]:
    """A hash as a script returns it (field, value, field, value...) as a dict."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _record(
    sid: str, fields: Mapping[str, str], order: Sequence[str], commands: Mapping[str, str]
) -> SessionRecord | None:
    """The session from its hash, outbox order and outbox commands; None if it has no snapshot (none)."""
    if "snapshot" not in fields:
        return None
    outbox = tuple(
        OutboxEntry(entry_id, loads_object(commands[entry_id], f"session {sid!r} outbox {entry_id!r}"))
        for entry_id in order
        if entry_id in commands
    )
    ended_at = fields.get("ended_at")
    return SessionRecord(
        session_id=sid,
        snapshot_json=fields["snapshot"],
        version=int(fields["version"]),
        outbox=outbox,
        updated_at=float(fields["updated_at"]),
        ended_at=None if ended_at is None else float(ended_at),
    )


class RedisStore:
    """The ``Store`` interface over Redis. Create it with ``await RedisStore.open(url)``."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        description: str = "redis",
        retention: Seconds = DEFAULT_RETENTION,
        dedup_ttl: Seconds = DEFAULT_DEDUP_TTL,
        command_timeout: Seconds = DEFAULT_COMMAND_TIMEOUT,
    ) -> None:
        check_ttl("retention", retention)
        check_ttl("dedup_ttl", dedup_ttl)
        check_ttl("command_timeout", command_timeout)
        self._client = client
        self._timeout = command_timeout
        # Operations in flight (the task running each, and its deadline), those the watchdog cancelled, and
        # the watchdog task itself (started by the first operation, in the loop the store is used from).
        self._deadlines: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._watchdog: asyncio.Task[None] | None = None
        # Auto-pipelining (see ``_eval``): calls waiting for this loop iteration's flush, batches being sent.
        self._queued: list[_Pending] = []
        self._sending: set[asyncio.Task[None]] = set()
        self._prefix = prefix
        self._description = description
        self._retention = retention
        self._dedup_ttl = dedup_ttl
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._begin = client.register_script(_BEGIN)
        self._lookup = client.register_script(_LOOKUP)
        self._begin_route = client.register_script(_BEGIN_ROUTE)
        self._finish = client.register_script(_FINISH)
        self._commit = client.register_script(_COMMIT)
        self._mark_done = client.register_script(_MARK_DONE)
        self._execute: Callable[..., Awaitable[Any]] = client.execute_command
        self._claim = client.register_script(_CLAIM)
        self._closed = False

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        retention: Seconds = DEFAULT_RETENTION,
        dedup_ttl: Seconds = DEFAULT_DEDUP_TTL,
        connect_timeout: Seconds = 2.0,
        command_timeout: Seconds = DEFAULT_COMMAND_TIMEOUT,
    ) -> RedisStore:
        """Connect to ``redis[s]://[:password@]host[:port][/db][?prefix=...]`` and check it answers.

        ``command_timeout`` bounds each store operation as a whole (retry included); see ``_watch``.
        """
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        prefix = next((value for name, value in query if name == "prefix"), DEFAULT_PREFIX)
        rest = urlencode([(name, value) for name, value in query if name != "prefix"])
        plain_url = urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment))
        # Never show a password: keep only host[:port] of the network location.
        description = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, parts.query, ""))
        try:
            _ = parts.port  # raises ValueError for a port that is not a number
            client = aioredis.Redis.from_url(
                plain_url,
                decode_responses=True,
                socket_connect_timeout=connect_timeout,
                socket_timeout=None,
                # One quick retry on a fresh connection: after a restart of Redis the pooled sockets are dead.
                retry=Retry(ExponentialBackoff(cap=0.1, base=0.01), 1),
            )
        except (ValueError, RedisError) as exc:
            raise ConfigError(f"store URL {description!r}: {exc}") from exc
        store = cls(
            client,
            prefix=prefix,
            description=description,
            retention=retention,
            dedup_ttl=dedup_ttl,
            command_timeout=command_timeout,
        )
        try:
            await store.ping()
        except StoreError:
            await client.aclose()
            raise
        return store

    @property
    def description(self) -> str:
        return self._description

    def _key(self, *parts: str) -> str:
        return self._prefix + "".join(parts)

    async def _call(self, what: str, operation: Callable[[], Awaitable[T]]) -> T:
        """Run one store operation against Redis: its errors as ``StoreError``, its time bounded by the
        command timeout (see ``_watch``)."""
        if self._closed:
            raise StoreError(f"{self._description}: used after close()")
        task = asyncio.current_task()
        if task is None:  # not run by a task (cannot be cancelled, so cannot be timed out either)
            return await self._plain_call(what, operation)
        loop = task.get_loop()
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = loop.create_task(self._watch())
        cancelling = task.cancelling()
        self._deadlines[task] = loop.time() + self._timeout
        try:
            return await operation()
        except asyncio.CancelledError:
            if task in self._expired and task.uncancel() <= cancelling:
                # The cancelled command's connection is dropped by redis-py, never reused with a reply pending.
                message = f"{self._description}: {what}: no answer within {self._timeout:g} s"
                raise StoreError(message) from None
            raise
        except (RedisError, OSError) as exc:
            raise StoreError(f"{self._description}: {what}: {exc}") from exc
        finally:
            del self._deadlines[task]
            self._expired.discard(task)

    async def _plain_call(self, what: str, operation: Callable[[], Awaitable[T]]) -> T:
        try:
            return await operation()
        except (RedisError, OSError) as exc:
            raise StoreError(f"{self._description}: {what}: {exc}") from exc

    async def _watch(self) -> None:
        """Cancel the operations that run past the command timeout, as ``asyncio.timeout`` would.

        One task checking the operations in flight a few times a second costs less than a timer per
        operation (``asyncio.timeout``: about 4 us of CPU each; redis-py's ``socket_timeout``, a timeout
        context around every reply read: about 14 us per operation, measured with store_bench). An
        operation is cancelled at most a tick (a tenth of the timeout, at most 0.25 s) after its deadline.
        """
        tick = min(0.25, self._timeout / 10)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            for task, deadline in list(self._deadlines.items()):
                if deadline <= now and task not in self._expired:
                    self._expired.add(task)
                    task.cancel()

    async def _eval(self, script: AsyncScript, keys: Sequence[str], args: Sequence[str | bytes | int]) -> Any:
        """Run a registered script by its digest; send its text if the server does not have it (restarted).

        Scripts asked for in one iteration of the event loop go out together (auto-pipelining): ``_flush``
        sends them as one pipeline, one write and one read for all of them, and each caller gets its own
        reply or error. Measured with store_bench (16 events in flight): 169 -> 95 us of CPU per event with
        redis-py's Pipeline, 58 us with the batch packed here (``_pack``, ``_exchange``).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queued.append((("EVALSHA", script.sha, len(keys), *keys, *args), future))
        if len(self._queued) == 1:
            loop.call_soon(self._flush, loop)
        try:
            return await future
        except NoScriptError:
            return await self._execute("EVAL", script.script, len(keys), *keys, *args)

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        """Send the calls queued in this loop iteration (those whose callers gave up already are dropped)."""
        batch = [(command, future) for command, future in self._queued if not future.done()]
        self._queued = []
        if batch:
            task = loop.create_task(self._send(batch))
            self._sending.add(task)  # the loop keeps only a weak reference to a task
            task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[_Pending]) -> None:
        """The batch as one pipeline (one write, one read); each reply or error to its caller's future.

        A failure of the connection fails every call in the batch; so does the command timeout, kept by the
        watchdog for this task as for any operation.
        """
        task = asyncio.current_task()
        assert task is not None  # a coroutine run by create_task
        self._deadlines[task] = task.get_loop().time() + self._timeout
        outcomes: list[Any]
        try:
            outcomes = await self._exchange(b"".join(_pack(command) for command, _ in batch), len(batch))
        except asyncio.CancelledError:
            if task not in self._expired:
                _fail(batch, RedisConnectionError("the store was closed"))
                raise
            # The cancelled pipeline's connection is dropped by redis-py, never reused with replies pending.
            outcomes = [RedisTimeoutError(f"no answer within {self._timeout:g} s")] * len(batch)
        except Exception as exc:
            outcomes = [exc] * len(batch)
        finally:
            del self._deadlines[task]
            self._expired.discard(task)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    async def _exchange(self, packed: bytes, count: int) -> list[Any]:
        """Write ``count`` packed commands on a pooled connection and read their replies, an error reply in
        its command's place.

        If the connection fails before any reply came (a pooled socket that Redis closed, e.g. when it
        restarted) the commands are sent once more on a fresh one, as redis-py's own retry would.
        """
        pool = self._client.connection_pool
        # Typed by hand: redis-py leaves get_connection unannotated.
        get_connection = cast(Callable[[], Awaitable[AbstractConnection]], pool.get_connection)
        retried = False
        while True:
            conn = await get_connection()
            replies: list[Any] = []
            try:
                # redis-py drops the connection itself when a write or read fails or is cancelled.
                await conn.send_packed_command(packed, check_health=False)
                while len(replies) < count:
                    try:
                        replies.append(await conn.read_response())
                    except ResponseError as exc:
                        replies.append(exc)
                return replies
            except (RedisConnectionError, RedisTimeoutError):
                if replies or retried:
                    raise
                retried = True
            finally:
                await pool.release(conn)

    async def close(self) -> None:
        if not self._closed:
            try:
                await self._call("close", self._client.aclose)
            finally:
                self._closed = True
                for task in [*self._sending, *filter(None, [self._watchdog])]:
                    task.cancel()

    async def ping(self) -> None:
        await self._call("ping", self._client.ping)

    async def acquire(
        self,
        session_id: str,
        *,
        owner: str,
        ttl: Seconds = DEFAULT_LOCK_TTL,
        wait: Seconds = DEFAULT_LOCK_WAIT,
    ) -> Lock:
        check_ttl("ttl", ttl)
        keys = [self._key("lock:", session_id), self._key("fence:", session_id), self._key("fence")]
        args: list[str | int] = [_ms(ttl), owner, _FENCE_GRACE_MS]

        async def try_once() -> Lock | None:
            token = await self._call("acquire", lambda: self._eval(self._acquire, keys, args))
            return Lock(session_id, owner, int(token), ttl) if int(token) else None

        return await wait_for_lock(try_once, session_id=session_id, wait=wait)

    async def begin(
        self,
        session_id: str,
        *,
        owner: str,
        ttl: Seconds = DEFAULT_LOCK_TTL,
        wait: Seconds = DEFAULT_LOCK_WAIT,
    ) -> tuple[Lock, SessionRecord | None]:
        check_ttl("ttl", ttl)
        keys = [
            self._key("lock:", session_id),
            self._key("fence:", session_id),
            self._key("fence"),
            self._key("s:", session_id),
            self._key("ol:", session_id),
            self._key("oh:", session_id),
        ]
        args: list[str | int] = [_ms(ttl), owner, _FENCE_GRACE_MS]
        record: list[SessionRecord | None] = [None]

        async def try_once() -> Lock | None:
            reply = await self._call("begin", lambda: self._eval(self._begin, keys, args))
            token = int(reply[0])
            if not token:
                return None
            fields, order, commands = reply[1:]
            record[0] = _record(session_id, _pairs(fields), order, _pairs(commands))
            return Lock(session_id, owner, token, ttl)

        lock = await wait_for_lock(try_once, session_id=session_id, wait=wait)
        return lock, record[0]

    async def begin_route(
        self,
        route_key: str,
        *,
        owner: str,
        ttl: Seconds = DEFAULT_LOCK_TTL,
        wait: Seconds = DEFAULT_LOCK_WAIT,
    ) -> tuple[str, Lock, SessionRecord | None] | None:
        check_ttl("ttl", ttl)
        keys = [self._key("r:", route_key), self._key("fence")]
        args: list[str | int] = [self._prefix, _ms(ttl), owner, _FENCE_GRACE_MS]
        tried = [""]

        async def try_once() -> tuple[str, Lock, SessionRecord | None] | Busy | None:
            reply = await self._call("begin_route", lambda: self._eval(self._begin_route, keys, args))
            if not reply:
                return None
            session_id = str(reply[1])
            token = int(reply[0])
            if not token:
                tried[0] = session_id
                return BUSY
            fields, order, commands = reply[2:]
            record = _record(session_id, _pairs(fields), order, _pairs(commands))
            return session_id, Lock(session_id, owner, token, ttl), record

        return await wait_for(
            try_once, wait=wait, busy_message=lambda: busy_route_message(route_key, tried[0], wait)
        )

    def _stale(self, lock: Lock) -> StaleLockError:
        return StaleLockError(
            f"session {lock.session_id!r}: lock token {lock.token} of {lock.owner!r} is stale; "
            "another owner took the session after it expired"
        )

    async def renew(self, lock: Lock, *, ttl: Seconds = DEFAULT_LOCK_TTL) -> Lock:
        check_ttl("ttl", ttl)
        keys = [self._key("lock:", lock.session_id), self._key("fence:", lock.session_id)]
        args: list[str | int] = [str(lock.token), lock.owner, _ms(ttl), _FENCE_GRACE_MS]
        if not await self._call("renew", lambda: self._eval(self._renew, keys, args)):
            raise self._stale(lock)
        return Lock(lock.session_id, lock.owner, lock.token, ttl)

    async def release(self, lock: Lock) -> None:
        keys = [self._key("lock:", lock.session_id)]
        args = [f"{lock.token}|{lock.owner}"]
        await self._call("release", lambda: self._eval(self._release, keys, args))

    async def _load_many(self, session_ids: Sequence[str]) -> list[SessionRecord]:
        async def fetch() -> list[Any]:
            pipe = self._client.pipeline(transaction=True)
            for sid in session_ids:
                pipe.hgetall(self._key("s:", sid))
                pipe.lrange(self._key("ol:", sid), 0, -1)
                pipe.hgetall(self._key("oh:", sid))
            return list(await pipe.execute())

        replies = await self._call("load", fetch)
        records = []
        for index, sid in enumerate(session_ids):
            record = _record(sid, *replies[3 * index : 3 * index + 3])
            if record is not None:
                records.append(record)
        return records

    async def load(self, session_id: str) -> SessionRecord | None:
        records = await self._load_many([session_id])
        return records[0] if records else None

    async def lookup(self, route_key: str) -> str | None:
        keys = [self._key("r:", route_key)]
        found = await self._call("lookup", lambda: self._eval(self._lookup, keys, [self._prefix]))
        return None if found is None else str(found)

    async def seen(self, dedup_key: str) -> bool:
        return bool(await self._call("seen", lambda: self._client.exists(self._key("d:", dedup_key))))

    async def commit(
        self,
        lock: Lock,
        *,
        snapshot: SnapshotData,
        outbox: Sequence[OutboxEntry] = (),
        routes: Iterable[str] = (),
        unroutes: Iterable[str] = (),
        timers_set: Mapping[str, Seconds] | None = None,
        timers_cancel: Iterable[str] = (),
        dedup_key: str | None = None,
        ended: bool = False,
        done: Iterable[str] = (),
        release: bool = False,
    ) -> int:
        reply = await self._write(
            lock.session_id,
            str(lock.token),
            lock.owner,
            lock.ttl,
            snapshot=snapshot,
            outbox=outbox,
            routes=routes,
            unroutes=unroutes,
            timers_set=timers_set,
            timers_cancel=timers_cancel,
            dedup_key=dedup_key,
            ended=ended,
            done=done,
            release=release,
        )
        if reply == -1:
            raise self._stale(lock)
        return reply

    async def create(
        self,
        session_id: str,
        *,
        owner: str,
        snapshot: SnapshotData,
        ttl: Seconds = DEFAULT_LOCK_TTL,
        outbox: Sequence[OutboxEntry] = (),
        routes: Iterable[str] = (),
        timers_set: Mapping[str, Seconds] | None = None,
        dedup_key: str | None = None,
        ended: bool = False,
    ) -> Lock | None:
        check_ttl("ttl", ttl)
        token = await self._write(
            session_id,
            "",  # no token yet: the script creates the session and takes its lock
            owner,
            ttl,
            snapshot=snapshot,
            outbox=outbox,
            routes=routes,
            timers_set=timers_set,
            dedup_key=dedup_key,
            ended=ended,
        )
        return None if token == -3 else Lock(session_id, owner, token, ttl)

    async def advance(
        self,
        route_key: str,
        session_id: str,
        *,
        version: int,
        owner: str,
        snapshot: SnapshotData,
        ttl: Seconds = DEFAULT_LOCK_TTL,
        outbox: Sequence[OutboxEntry] = (),
        routes: Iterable[str] = (),
        timers_set: Mapping[str, Seconds] | None = None,
        timers_cancel: Iterable[str] = (),
        dedup_key: str | None = None,
        ended: bool = False,
    ) -> Lock | None:
        check_ttl("ttl", ttl)
        token = await self._write(
            session_id,
            "",  # no token yet: the script checks the session is unchanged, then takes its lock
            owner,
            ttl,
            snapshot=snapshot,
            outbox=outbox,
            routes=routes,
            timers_set=timers_set,
            timers_cancel=timers_cancel,
            dedup_key=dedup_key,
            ended=ended,
            version=version,
            route_key=route_key,
        )
        return None if token == -3 else Lock(session_id, owner, token, ttl)

    async def _write(
        self,
        sid: str,
        token: str,
        owner: str,
        ttl: Seconds,
        *,
        snapshot: SnapshotData,
        outbox: Sequence[OutboxEntry] = (),
        routes: Iterable[str] = (),
        unroutes: Iterable[str] = (),
        timers_set: Mapping[str, Seconds] | None = None,
        timers_cancel: Iterable[str] = (),
        dedup_key: str | None = None,
        ended: bool = False,
        done: Iterable[str] = (),
        release: bool = False,
        version: int | None = None,
        route_key: str = "",
    ) -> int:
        """The commit script (see ``_COMMIT``; an empty ``token`` creates the session, or with ``version``
        advances it); raises ``DuplicateEventError`` for its -2 and returns its other replies."""
        check_changes(sid, outbox, timers_set or {})
        done_ids = list(done)
        keys = [
            self._key("fence:", sid),
            self._key("s:", sid),
            self._key("ol:", sid),
            self._key("oh:", sid),
            self._key("rk:", sid),
            self._key("tk:", sid),
            self._key("pending"),
            self._key("timers"),
            self._key("sessions"),
            self._key("ended"),
            self._key("d:", dedup_key or ""),
            self._key("tdue"),
            self._key("lock:", sid),
            self._key("fence"),
            self._key("r:", route_key),
        ]
        args: list[str | bytes | int] = [
            token,
            snapshot_text(snapshot),
            sid,
            self._prefix,
            int(ended),
            _ms(self._retention),
            _ms(self._dedup_ttl),
            int(dedup_key is not None),
            owner,
            _ms(ttl),
            _FENCE_GRACE_MS,
            int(release),
            "" if version is None else version,
            len(done_ids),
            *done_ids,
        ]
        entries = [(entry.id, dumps(entry.command)) for entry in outbox]
        args.append(len(entries))
        for entry_id, command in entries:
            args += [entry_id, command]
        for group in (list(routes), list(unroutes), [_timer_member(sid, k) for k in timers_cancel]):
            args.append(len(group))
            args += group
        sets = list((timers_set or {}).items())
        args.append(len(sets))
        for key, due in sets:
            args += [_timer_member(sid, key), repr(float(due))]
        reply = int(await self._call("commit", lambda: self._eval(self._commit, keys, args)))
        if reply == -2:
            raise DuplicateEventError(f"session {sid!r}: event {dedup_key!r} was already handled")
        return reply

    async def mark_done(self, session_id: str, outbox_ids: Iterable[str]) -> None:
        ids = list(outbox_ids)
        if not ids:
            return
        keys = [self._key("ol:", session_id), self._key("oh:", session_id), self._key("pending")]
        await self._call("mark_done", lambda: self._eval(self._mark_done, keys, [session_id, *ids]))

    async def finish(self, lock: Lock, done: Iterable[str]) -> None:
        sid = lock.session_id
        keys = [self._key("ol:", sid), self._key("oh:", sid), self._key("pending"), self._key("lock:", sid)]
        args = [sid, f"{lock.token}|{lock.owner}", *done]
        await self._call("finish", lambda: self._eval(self._finish, keys, args))

    async def pending_outboxes(self) -> list[PendingOutbox]:
        members = await self._call("pending_outboxes", lambda: self._client.smembers(self._key("pending")))
        pending = sorted(str(sid) for sid in members)
        records = {record.session_id: record for record in await self._load_many(pending)}
        gone = [sid for sid in pending if sid not in records]
        if gone:
            await self._call("pending_outboxes", lambda: self._client.srem(self._key("pending"), *gone))
        return [
            PendingOutbox(sid, records[sid].outbox)
            for sid in pending
            if sid in records and records[sid].outbox
        ]

    async def due_timers(self, now: Seconds, *, limit: int = 100) -> list[Timer]:
        rows = await self._call(
            "due_timers",
            lambda: self._client.zrangebyscore(
                self._key("timers"), "-inf", now, start=0, num=limit, withscores=True
            ),
        )
        members = [member for member, _ in cast(list[tuple[str, float]], rows)]
        if not members:
            return []
        dues = await self._call("due_timers", lambda: self._client.hmget(self._key("tdue"), members))
        timers = []
        for member, due in zip(members, cast(list[str | None], dues), strict=True):
            if due is not None:  # None: cancelled between the two reads
                sid, key = _split_member(member)
                timers.append(Timer(sid, key, float(due)))
        return timers

    async def claim_timer(self, timer: Timer, *, now: Seconds, lease: Seconds = DEFAULT_TIMER_LEASE) -> bool:
        check_ttl("lease", lease)
        keys = [self._key("timers"), self._key("tdue")]
        args = [_timer_member(timer.session_id, timer.key), repr(timer.due), repr(now), repr(now + lease)]
        return bool(await self._call("claim_timer", lambda: self._eval(self._claim, keys, args)))

    async def list_sessions(self, *, limit: int = 100) -> list[SessionRecord]:
        found: list[SessionRecord] = []
        start = 0
        while len(found) < limit:
            batch = await self._call(
                "list_sessions",
                lambda s=start: self._client.zrevrange(self._key("sessions"), s, s + limit - 1),  # type: ignore[misc]
            )
            if not batch:
                break
            found += await self._load_many([str(sid) for sid in batch])
            start += limit
        return found[:limit]

    async def purge(self) -> int:
        seconds, micros = await self._call("purge", self._client.time)
        cutoff = seconds + micros / 1_000_000 - self._retention
        ended = await self._call(
            "purge", lambda: self._client.zrangebyscore(self._key("ended"), "-inf", cutoff)
        )
        gone = [str(sid) for sid in ended]
        if not gone:
            return 0

        async def drop() -> None:
            pipe = self._client.pipeline(transaction=True)
            pipe.zrem(self._key("sessions"), *gone)
            pipe.zrem(self._key("ended"), *gone)
            pipe.srem(self._key("pending"), *gone)
            await pipe.execute()

        await self._call("purge", drop)
        return len(gone)
