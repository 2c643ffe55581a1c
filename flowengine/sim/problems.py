"""Error answers of the simulated API: one exception carrying the documented error body.

Every handler raises :class:`ApiProblem`; the app turns it into the reference's body
(``category``, ``code``, ``message``, ``details``) and records it for the control API.
"""

from __future__ import annotations

from flowengine.typing import JSON, JSONObject


class ApiProblem(Exception):
    """An error answer: HTTP status plus the documented error body."""

    def __init__(
        self,
        status: int,
        category: str,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        details: list[dict[str, str]] | None = None,
    ) -> None:
        self.status = status
        self.category = category
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.details = list(details or [])
        super().__init__(f"{status} {code}: {message}")

    def body(self, method: str, path: str, remote: str) -> JSONObject:
        """The JSON body, with the request details the reference's examples carry."""
        details: list[JSON] = [dict(item) for item in self.details]
        details += [
            {"name": "requestMethod", "value": method},
            {"name": "remoteAddress", "value": remote},
            {"name": "requestPath", "value": path.removeprefix("/v1/")},
        ]
        return {
            "category": self.category,
            "code": self.code,
            "message": self.message,
            "details": details,
        }


def not_found(kind: str, ident: str) -> ApiProblem:
    """404 ``{kind}-not-found``, e.g. ``call-not-found``."""
    return ApiProblem(404, "not-found", f"{kind}-not-found", f"The {kind} {ident!r} could not be found")


def invalid_call_state(call_id: str, state: str) -> ApiProblem:
    """403 ``call-invalid-state`` with the reference's wording."""
    return ApiProblem(
        403,
        "forbidden",
        "call-invalid-state",
        f"Unable to update call {call_id}. Invalid call state {state}",
    )


def validation(message: str, prop: str | None = None) -> ApiProblem:
    """400 ``validation-error``; ``prop`` names the offending property in the details."""
    details = [{"name": "property", "value": prop}] if prop else []
    return ApiProblem(400, "bad-request", "validation-error", message, details=details)
