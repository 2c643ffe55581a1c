"""The floor: a bare aiohttp callback handler that parses each callback and makes one outbound REST POST
(to the stand-in) before answering, and decides nothing. What the engine is compared with, in the same run.

    python benchmarks/load/floor.py --port 8081 --api-url http://127.0.0.1:8099/v1 [--uvloop] [--gc-stats PATH]
"""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))

USER = "u-bench"
_HTTP: web.AppKey[aiohttp.ClientSession] = web.AppKey("http", aiohttp.ClientSession)
_API: web.AppKey[str] = web.AppKey("api", str)
_AUTH = "Basic " + base64.b64encode(b"t-bench:s-bench").decode()


def _bad(message: str) -> web.Response:
    return web.Response(
        status=400,
        body=orjson.dumps({"error": {"code": "malformed-body", "message": message}}),
        content_type="application/json",
    )


async def callback(request: web.Request) -> web.Response:
    try:
        data = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        return _bad(str(exc))
    if not isinstance(data, dict) or not isinstance(data.get("eventType"), str):
        return _bad("expected a JSON object with an eventType")
    call_id = data.get("callId")
    if not isinstance(call_id, str) or not call_id:
        return _bad("callId is missing")
    body = orjson.dumps({"sentence": "Thanks for calling.", "voice": "julie", "tag": data.get("tag", "")})
    url = f"{request.app[_API]}/users/{USER}/calls/{call_id}/audio"
    headers = {"Authorization": _AUTH, "Content-Type": "application/json"}
    async with request.app[_HTTP].post(url, data=body, headers=headers) as answer:
        await answer.read()
        if answer.status >= 400:
            return web.Response(status=502, text="the API refused the request")
    return web.Response(body=b'{"status":"handled"}', content_type="application/json")


async def healthz(request: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"ok"}', content_type="application/json")


def create_app(api_url: str) -> web.Application:
    app = web.Application()
    app[_API] = api_url.rstrip("/")

    async def http(app: web.Application):  # type: ignore[no-untyped-def]
        async with aiohttp.ClientSession() as session:
            app[_HTTP] = session
            yield

    app.cleanup_ctx.append(http)
    app.router.add_post("/callbacks/voice", callback)
    app.router.add_get("/healthz", healthz)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-url", required=True, help="the REST stand-in, e.g. http://127.0.0.1:8099/v1")
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--gc-stats", metavar="PATH")
    args = parser.parse_args(argv)
    if args.gc_stats:
        import gcstats

        gcstats.install(args.gc_stats)
    if args.uvloop:
        import uvloop

        uvloop.install()
    web.run_app(create_app(args.api_url), host="127.0.0.1", port=args.port, access_log=None, print=None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
