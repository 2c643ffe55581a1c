"""Turn a schema-valid flow document into the frozen ``flowengine.flow.model`` dataclasses.

The builder trusts the schema for shapes and types; it parses durations (reporting the ones the schema's
pattern lets through but that do not make sense, or that exceed the API's limits), expands short forms, and
gives every element the position it was written at.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from flowengine.errors import Diagnostic
from flowengine.flow import model
from flowengine.flow.loader import JsonPath, LoadedDocument
from flowengine.flow.schema import dotted
from flowengine.flow.values import format_duration, parse_duration
from flowengine.typing import JSON

_T = TypeVar("_T")
_F = TypeVar("_F")
_BROKEN = (KeyError, TypeError, ValueError, AttributeError, IndexError, StopIteration)

_MAX_GATHER_TIMEOUT = 30.0
_MAX_DIAL_TIMEOUT = 300.0


class FlowBuilder:
    """Builds one ``model.Flow`` from a document, collecting diagnostics instead of stopping at the first."""

    def __init__(self, document: LoadedDocument, *, tolerant: bool = False) -> None:
        self.document = document
        self.diagnostics: list[Diagnostic] = []
        self.tolerant = tolerant
        """Build what can be built from data that failed the schema (for linting), skipping broken parts."""

    def guard(self, fallback: _F, build: Callable[..., _T], *args: Any) -> _T | _F:
        """``build(*args)``; in tolerant mode, a part the schema already rejected yields ``fallback``."""
        if not self.tolerant:
            return build(*args)
        try:
            return build(*args)
        except _BROKEN:
            return fallback

    # ------------------------------------------------------------------------------------ helpers

    def pos(self, path: JsonPath) -> model.Position:
        file, line, column = self.document.value_mark(path)
        return model.Position(file, line, column)

    def key_pos(self, path: JsonPath) -> model.Position:
        file, line, column = self.document.key_mark(path)
        return model.Position(file, line, column)

    def error(self, path: JsonPath, message: str, *, at_key: bool = False, code: str = "value") -> None:
        mark = self.document.key_mark(path) if at_key else self.document.value_mark(path)
        where = dotted(path)
        self.diagnostics.append(Diagnostic(*mark, "error", f"{where}: {message}", code))

    def duration(
        self, value: Any, path: JsonPath, *, maximum: float | None = None, at_key: bool = False
    ) -> float | None:
        if value is None:
            return None
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.error(path, str(exc), at_key=at_key, code="duration")
            return None
        if maximum is not None and seconds > maximum:
            limit = format_duration(maximum)
            self.error(path, f"{value!r} is longer than the API allows ({limit} at most)", code="duration")
            return maximum
        return seconds

    # --------------------------------------------------------------------------------------- flow

    def build(self) -> model.Flow:
        data = self.document.data
        states = {
            name: self.guard(model.State(name), self.state, name, _obj(body))
            for name, body in _obj(data.get("states")).items()
        }
        defaults = self.guard(model.Defaults(), self.defaults, _obj(data.get("defaults")))
        flow_name = data.get("flow")
        kind = data.get("kind", "voice")
        version = data.get("version", 1)
        return model.Flow(
            name=str(flow_name) if flow_name is not None else "",
            kind=cast(model.FlowKind, kind if kind in ("voice", "messaging") else "voice"),
            initial=str(data.get("initial", "")),
            states=states,
            version=version if isinstance(version, int) else 1,
            description=str(data.get("description", "")),
            numbers=tuple(n for n in _list(data.get("numbers")) if isinstance(n, str)),
            defaults=defaults,
            vars=dict(cast(dict[str, JSON], _obj(data.get("vars")))),
            env=tuple(n for n in _list(data.get("env")) if isinstance(n, str)),
            on=self.handlers(_obj(data.get("on")), ("on",)),
            source_hash=self.document.digest,
            pos=self.key_pos(("flow",)) if "flow" in data else self.pos(()),
        )

    def defaults(self, data: Mapping[str, Any]) -> model.Defaults:
        base = model.Defaults()
        gather_data = cast(dict[str, Any], data.get("gather") or {})
        path: JsonPath = ("defaults", "gather")
        timeout = self.duration(
            gather_data.get("inter_digit_timeout"),
            (*path, "inter_digit_timeout"),
            maximum=_MAX_GATHER_TIMEOUT,
        )
        gather = model.GatherDefaults(
            max_digits=gather_data.get("max_digits"),
            inter_digit_timeout=timeout if timeout is not None else base.gather.inter_digit_timeout,
            terminating_digits=gather_data.get("terminating_digits", base.gather.terminating_digits),
        )
        http_timeout = self.duration(data.get("http_timeout"), ("defaults", "http_timeout"))
        dial_timeout = self.duration(
            data.get("dial_timeout"), ("defaults", "dial_timeout"), maximum=_MAX_DIAL_TIMEOUT
        )
        return model.Defaults(
            voice=str(data.get("voice", base.voice)).lower(),
            gender=data.get("gender", base.gender),
            locale=data.get("locale", base.locale),
            gather=gather,
            http_timeout=http_timeout if http_timeout is not None else base.http_timeout,
            dial_timeout=dial_timeout if dial_timeout is not None else base.dial_timeout,
            on_error=data.get("on_error", base.on_error),
        )

    # ------------------------------------------------------------------------------------- states

    def state(self, name: str, data: Mapping[str, Any]) -> model.State:
        path: JsonPath = ("states", name)
        menu_data = data.get("menu")
        timers = []
        for key, value in _obj(data.get("after")).items():
            seconds = self.duration(key, (*path, "after", key), at_key=True)
            timer_path = (*path, "after", key)
            timers.append(
                model.Timer(
                    seconds=seconds if seconds is not None else 0.0,
                    transitions=self.transitions(value, timer_path),
                    pos=self.key_pos(timer_path),
                )
            )
        return model.State(
            name=name,
            actions=self.actions(_list(data.get("do")), (*path, "do")),
            on=self.handlers(_obj(data.get("on")), (*path, "on")),
            after=tuple(timers),
            menu=(
                self.guard(None, self.menu, _obj(menu_data), (*path, "menu"))
                if menu_data is not None
                else None
            ),
            final=bool(data.get("final", False)),
            description=str(data.get("description", "")),
            pos=self.key_pos(path),
        )

    def menu(self, data: Mapping[str, Any], path: JsonPath) -> model.Menu:
        choices_data = cast(dict[str, Any], data.get("choices") or {})
        choices = {
            key: self.transition(value, (*path, "choices", key)) for key, value in choices_data.items()
        }
        max_digits = data.get("max_digits")
        if max_digits is None and choices:
            max_digits = max(len(key) for key in choices)
        return model.Menu(
            prompt=self.prompt(data.get("prompt", ""), (*path, "prompt")),
            choices=choices,
            noinput=self.retry(data.get("noinput"), (*path, "noinput")),
            nomatch=self.retry(data.get("nomatch"), (*path, "nomatch")),
            max_digits=max_digits,
            inter_digit_timeout=self.duration(
                data.get("inter_digit_timeout"), (*path, "inter_digit_timeout"), maximum=_MAX_GATHER_TIMEOUT
            ),
            terminating_digits=data.get("terminating_digits"),
            into=data.get("into"),
        )

    def retry(self, data: Mapping[str, Any] | None, path: JsonPath) -> model.Retry:
        if data is None:
            return model.Retry()
        reprompt = data.get("reprompt")
        then = data.get("then")
        return model.Retry(
            max=int(data.get("max", 3)),
            reprompt=self.prompt(reprompt, (*path, "reprompt")) if reprompt is not None else None,
            then=self.transition(then, (*path, "then")) if then is not None else model.Transition(model.END),
        )

    # -------------------------------------------------------------------------------- transitions

    def handlers(self, data: Mapping[str, Any], path: JsonPath) -> dict[str, tuple[model.Transition, ...]]:
        return {event: self.transitions(value, (*path, event)) for event, value in data.items()}

    def transitions(self, data: Any, path: JsonPath) -> tuple[model.Transition, ...]:
        if isinstance(data, list):
            return tuple(self.transition(item, (*path, index)) for index, item in enumerate(data))
        return (self.transition(data, path),)

    def transition(self, data: Any, path: JsonPath) -> model.Transition:
        if isinstance(data, str):
            return model.Transition(target=data, pos=self.pos(path))
        body = _obj(data)
        goto, when = body.get("goto"), body.get("when")
        return model.Transition(
            target=goto if isinstance(goto, str) else None,
            when=when if isinstance(when, str) else None,
            actions=self.actions(_list(body.get("do")), (*path, "do")),
            pos=self.pos(path),
        )

    # ------------------------------------------------------------------------------------ actions

    def actions(self, data: list[Any], path: JsonPath) -> tuple[model.ActionType, ...]:
        built: list[model.ActionType] = []
        for index, item in enumerate(data):
            action = self.guard(None, self.action, item, (*path, index))
            if action is not None:
                built.append(action)
        return tuple(built)

    def action(self, item: Any, path: JsonPath) -> model.ActionType:
        if isinstance(item, str):
            name, value = item, None
        else:
            name, value = next(iter(cast(dict[str, Any], item).items()))
        return _MAKERS[name](self, value, (*path, name), self.pos(path))

    def prompt(self, data: Any, path: JsonPath) -> model.Prompt:
        if isinstance(data, str):
            return model.Prompt(text=data)
        body = cast(dict[str, Any], data)
        voice = body.get("voice")
        return model.Prompt(
            text=body.get("text"),
            url=body.get("url"),
            voice=voice.lower() if isinstance(voice, str) and "{" not in voice else voice,
            gender=body.get("gender"),
            locale=body.get("locale"),
            loop=bool(body.get("loop", False)),
            volume=body.get("volume"),
        )


def _obj(value: Any) -> dict[str, Any]:
    return cast(dict[str, Any], value) if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _leg(value: Any) -> str:
    return str(_obj(value).get("leg", model.CALLER))


def _answer(b: FlowBuilder, value: Any, path: JsonPath, pos: model.Position) -> model.ActionType:
    return model.Answer(pos=pos)


def _reject(b: FlowBuilder, value: Any, path: JsonPath, pos: model.Position) -> model.ActionType:
    return model.Reject(pos=pos)


def _hangup(b: FlowBuilder, value: Any, path: JsonPath, pos: model.Position) -> model.ActionType:
    return model.Hangup(leg=_leg(value), pos=pos)


def _speak(b: FlowBuilder, value: Any, path: JsonPath, pos: model.Position) -> model.ActionType:
    return model.Speak(prompt=b.prompt(value, path), leg=_leg(value), pos=pos)


def _play(b: FlowBuilder, value: Any, path: JsonPath, pos: model.Position) -> model.ActionType:
    if isinstance(value, str):
        return model.Play(prompt=model.Prompt(url=value), pos=pos)
    body = _obj(value)
    prompt = model.Prompt(url=body["url"], loop=bool(body.get("loop", False)), volume=body.get("volume"))
    return model.Play(prompt=prompt, leg=_leg(value), pos=pos)


def _stop_audio(b: FlowBuilder, value: Any, path: JsonPath, pos: model.Position) -> model.ActionType:
    return model.StopAudio(leg=_leg(value), pos=pos)


def _gather(b: FlowBuilder, value: Any, path: JsonPath, pos: model.Position) -> model.ActionType:
    body = _obj(value)
    prompt = body.get("prompt")
    return model.Gather(
        max_digits=body.get("max_digits"),
        inter_digit_timeout=b.duration(
            body.get("inter_digit_timeout"), (*path, "inter_digit_timeout"), maximum=_MAX_GATHER_TIMEOUT
        ),
        terminating_digits=body.get("terminating_digits"),
        prompt=b.prompt(prompt, (*path, "prompt")) if prompt is not None else None,
        into=body.get("into"),
        leg=_leg(value),
        pos=pos,
    )


def _send_dtmf(b: FlowBuilder, value: Any, path: JsonPath, pos: model.Position) -> model.ActionType:
    if isinstance(value, str):
        return model.SendDtmf(digits=value, pos=pos)
    return model.SendDtmf(digits=_obj(value)["digits"], leg=_leg(value), pos=pos)


def _record(b: FlowBuilder, value: Any, path: JsonPath, pos: model.Position) -> model.ActionType:
    body = _obj(value)
    return model.Record(
        max_duration=b.duration(body.get("max_duration"), (*path, "max_duration")),
        file_format=body.get("file_format", "wav"),
        transcribe=bool(body.get("transcribe", False)),
        leg=_leg(value),
        pos=pos,
    )


def _stop_recording(b: FlowBuilder, value: Any, path: JsonPath, pos: model.Position) -> model.ActionType:
    return model.StopRecording(leg=_leg(value), pos=pos)


def _transfer(b: FlowBuilder, value: Any, path: JsonPath, pos: model.Position) -> model.ActionType:
    if isinstance(value, str):
        return model.Transfer(to=value, pos=pos)
    body = _obj(value)
    whisper = body.get("whisper")
    return model.Transfer(
        to=body["to"],
        caller_id=body.get("caller_id"),
        whisper=b.prompt(whisper, (*path, "whisper")) if whisper is not None else None,
        pos=pos,
    )


def _dial(b: FlowBuilder, value: Any, path: JsonPath, pos: model.Position) -> model.ActionType:
    body = _obj(value)
    return model.Dial(
        to=body["to"],
        role=body["as"],
        from_=body.get("from"),
        timeout=b.duration(body.get("timeout"), (*path, "timeout"), maximum=_MAX_DIAL_TIMEOUT),
        pos=pos,
    )


def _bridge(b: FlowBuilder, value: Any, path: JsonPath, pos: model.Position) -> model.ActionType:
    if isinstance(value, list):
        return model.Bridge(legs=(value[0], value[1]), pos=pos)
    body = _obj(value)
    legs = body["legs"]
    return model.Bridge(legs=(legs[0], legs[1]), audio=bool(body.get("audio", True)), pos=pos)


def _conference(b: FlowBuilder, value: Any, path: JsonPath, pos: model.Position) -> model.ActionType:
    if isinstance(value, str):
        return model.Conference(name=value, pos=pos)
    body = _obj(value)
    return model.Conference(
        name=body["name"],
        leg=_leg(value),
        mute=bool(body.get("mute", False)),
        hold=bool(body.get("hold", False)),
        join_tone=bool(body.get("join_tone", True)),
        leave_tone=bool(body.get("leave_tone", True)),
        pos=pos,
    )


def _leave_conference(b: FlowBuilder, value: Any, path: JsonPath, pos: model.Position) -> model.ActionType:
    return model.LeaveConference(leg=_leg(value), pos=pos)


def _media(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(cast(list[str], value))


def _send_message(b: FlowBuilder, value: Any, path: JsonPath, pos: model.Position) -> model.ActionType:
    body = _obj(value)
    return model.SendMessage(
        text=body["text"], to=body.get("to"), from_=body.get("from"), media=_media(body.get("media")), pos=pos
    )


def _reply(b: FlowBuilder, value: Any, path: JsonPath, pos: model.Position) -> model.ActionType:
    if isinstance(value, str):
        return model.SendMessage(text=value, pos=pos)
    body = _obj(value)
    return model.SendMessage(text=body["text"], media=_media(body.get("media")), pos=pos)


def _http(b: FlowBuilder, value: Any, path: JsonPath, pos: model.Position) -> model.ActionType:
    body = _obj(value)
    return model.HttpRequest(
        url=body["url"],
        method=body.get("method", "GET"),
        headers=dict(body.get("headers") or {}),
        json=body.get("json"),
        body=body.get("body"),
        timeout=b.duration(body.get("timeout"), (*path, "timeout")),
        into=body.get("into"),
        pos=pos,
    )


def _lookup_caller(b: FlowBuilder, value: Any, path: JsonPath, pos: model.Position) -> model.ActionType:
    if isinstance(value, str):
        return model.LookupCaller(into=value, pos=pos)
    body = _obj(value)
    return model.LookupCaller(into=body["into"], number=body.get("number", "{{ call.from }}"), pos=pos)


def _set(b: FlowBuilder, value: Any, path: JsonPath, pos: model.Position) -> model.ActionType:
    return model.SetVars(values=dict(_obj(value)), pos=pos)


def _log(b: FlowBuilder, value: Any, path: JsonPath, pos: model.Position) -> model.ActionType:
    if isinstance(value, str):
        return model.Log(message=value, pos=pos)
    body = _obj(value)
    return model.Log(message=body["message"], level=body.get("level", "info"), pos=pos)


def _start_flow(b: FlowBuilder, value: Any, path: JsonPath, pos: model.Position) -> model.ActionType:
    if isinstance(value, str):
        return model.StartFlow(flow=value, pos=pos)
    body = _obj(value)
    return model.StartFlow(flow=body["flow"], vars=dict(body.get("vars") or {}), pos=pos)


_Maker = Callable[[FlowBuilder, Any, JsonPath, model.Position], model.ActionType]

_MAKERS: dict[str, _Maker] = {
    "answer": _answer,
    "reject": _reject,
    "hangup": _hangup,
    "speak": _speak,
    "play": _play,
    "stop_audio": _stop_audio,
    "gather": _gather,
    "send_dtmf": _send_dtmf,
    "record": _record,
    "stop_recording": _stop_recording,
    "transfer": _transfer,
    "dial": _dial,
    "bridge": _bridge,
    "conference": _conference,
    "leave_conference": _leave_conference,
    "send_message": _send_message,
    "reply": _reply,
    "http": _http,
    "lookup_caller": _lookup_caller,
    "set": _set,
    "log": _log,
    "start_flow": _start_flow,
}
"""Action name -> the function that builds its model object (every action of the schema has one)."""
