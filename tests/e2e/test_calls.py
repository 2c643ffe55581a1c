"""End to end: ``flowengine serve`` and ``flowengine sim`` as separate processes over loopback HTTP, the
simulator on a virtual clock driven by the test. Each test asserts what the caller heard (the simulator's
transcript) and the REST operations the engine issued."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from .conftest import Deployment, Webhook
from .support import EXEC_TOKEN, Phones

pytestmark = pytest.mark.slow

CALLER = "+13235550100"


def _rest(transcript: list[dict[str, Any]]) -> list[str]:
    return [e["text"] for e in transcript if e["kind"] == "rest"]


async def _hung_up(phones: Phones, call_id: str) -> bool:
    return any(
        e["kind"] == "call" and e["text"].startswith("hung up") for e in await phones.transcript(call_id)
    )


async def _heard(phones: Phones, call_id: str, text: str) -> bool:
    return text in await phones.heard(call_id)


class TestIvr:
    async def test_the_menu_leads_to_a_transfer(self, deployment: Deployment, phones: Phones) -> None:
        call = await phones.call(CALLER, "+19195559001")
        await phones.until(
            "the menu", lambda: _heard(phones, call, "Press 1 to be transferred, or 2 to hang up.")
        )
        await phones.press(call, "1")
        await phones.until("the transfer", lambda: _transferred(phones, call))
        assert await phones.heard(call) == [
            "Welcome to the test line.",
            "Press 1 to be transferred, or 2 to hang up.",
            "Transferring you now.",
        ]
        rest = _rest(await phones.transcript(call))
        assert rest[0] == f"POST /v1/users/u-e2e/calls/{call}"  # answer
        assert rest[-1] == f"POST /v1/users/u-e2e/calls/{call}"  # transfer

    async def test_no_input_reprompts_then_says_goodbye(self, deployment: Deployment, phones: Phones) -> None:
        call = await phones.call(CALLER, "+19195559001")
        await phones.until("the goodbye", lambda: _hung_up(phones, call), timeout=30)
        assert await phones.heard(call) == [
            "Welcome to the test line.",
            "Press 1 to be transferred, or 2 to hang up.",
            "I did not hear anything. Press 1 to be transferred, or 2 to hang up.",
            "Goodbye.",
        ]


async def _transferred(phones: Phones, call_id: str) -> bool:
    return any(
        e["kind"] == "call" and "transferring to +19195559101" in e["text"]
        for e in await phones.transcript(call_id)
    )


class TestVoicemail:
    async def test_the_recording_and_its_transcription_are_posted_to_the_webhook(
        self, deployment: Deployment, phones: Phones, webhook: Webhook
    ) -> None:
        await phones.transcription("Please call me back about the invoice.")
        call = await phones.call("+13235550111", "+19195559002")
        await phones.until("recording", lambda: _recording(phones, call))
        await phones.advance(3)
        await phones.press(call, "#")

        async def posted() -> list[dict[str, Any]]:
            return [
                r
                for r in webhook.received
                if r["path"] == "/voicemail" and r["json"]["from"] == "+13235550111"
            ]

        (item,) = await phones.until("the webhook", posted)
        assert item["json"]["text"] == "Please call me back about the invoice."
        assert "/recordings/" in item["json"]["recording"]
        await phones.until("the goodbye", lambda: _hung_up(phones, call))
        assert await phones.heard(call) == [
            "Please leave a message after the tone, then press any key.",
            "Thank you. Goodbye.",
        ]

    async def test_a_caller_who_hangs_up_after_the_message_still_gets_it_transcribed_and_posted(
        self, deployment: Deployment, phones: Phones, webhook: Webhook
    ) -> None:
        await phones.transcription("This is Bob, no need to call back.")
        call = await phones.call("+13235550112", "+19195559002")
        await phones.until("recording", lambda: _recording(phones, call))
        await phones.advance(2)
        await phones.hangup(call)

        async def posted() -> list[dict[str, Any]]:
            return [
                r
                for r in webhook.received
                if r["path"] == "/voicemail" and r["json"]["from"] == "+13235550112"
            ]

        (item,) = await phones.until("the webhook", posted)
        assert item["json"]["text"] == "This is Bob, no need to call back."


async def _recording(phones: Phones, call_id: str) -> bool:
    return any(e["text"] == "recording started" for e in await phones.transcript(call_id))


class TestForwarding:
    async def test_the_agent_answers_and_is_bridged_with_the_caller(
        self, deployment: Deployment, phones: Phones
    ) -> None:
        await phones.behave("+19195559103", mode="answer", after=2)
        call = await phones.call(CALLER, "+19195559003")

        async def bridged() -> bool:
            return any(e["text"].startswith("bridged with") for e in await phones.transcript(call))

        await phones.until("the bridge", bridged)
        assert await phones.heard(call) == ["Connecting you."]

    async def test_nobody_answering_ends_with_an_apology(
        self, deployment: Deployment, phones: Phones
    ) -> None:
        await phones.behave("+19195559103", mode="no-answer")
        call = await phones.call(CALLER, "+19195559003")
        await phones.until("the apology", lambda: _hung_up(phones, call), timeout=30)
        assert await phones.heard(call) == ["Connecting you.", "Nobody answered. Goodbye."]


class TestConference:
    async def test_three_callers_meet_in_one_conference(self, deployment: Deployment, phones: Phones) -> None:
        calls = [await phones.call(f"+1323555020{n}", "+19195559004") for n in range(3)]

        async def joined() -> list[str] | None:
            rooms = []
            for call in calls:
                lines = [
                    e["text"]
                    for e in await phones.transcript(call)
                    if e["text"].startswith("joined conference")
                ]
                if not lines:
                    return None
                rooms.append(lines[0])
            return rooms

        rooms = await phones.until("three members", joined)
        assert len(set(rooms)) == 1
        for call in calls:
            assert await phones.heard(call) == ["Joining the conference."]


class TestSurvey:
    async def test_the_sms_survey_insists_until_it_gets_a_rating(
        self, deployment: Deployment, phones: Phones
    ) -> None:
        them = "+13235550300"
        await phones.text(them, "+19195559005", "hi")

        async def replies(count: int) -> list[str] | None:
            texts = [
                m["text"]
                for m in await phones.messages()
                if m.get("to") == them and m.get("direction") == "out"
            ]
            return texts if len(texts) >= count else None

        await phones.until("the question", lambda: replies(1))
        await phones.text(them, "+19195559005", "great")
        await phones.until("the insistence", lambda: replies(2))
        await phones.text(them, "+19195559005", " 4 ")
        texts = await phones.until("the thanks", lambda: replies(3))
        assert sorted(texts) == sorted(
            [
                "Thanks for visiting! On a scale of 1 to 5, how was it?",
                "Please answer with a number from 1 to 5.",
                "Thank you for rating us 4.",
            ]
        )
        # the survey ended; texting again starts a new conversation on the same pair of numbers
        await phones.text(them, "+19195559005", "hello again")
        texts = await phones.until("a new survey", lambda: replies(4))
        assert texts.count("Thanks for visiting! On a scale of 1 to 5, how was it?") == 2


class TestExecutions:
    async def test_an_outbound_reminder_started_through_the_executions_api(
        self, deployment: Deployment, phones: Phones
    ) -> None:
        await phones.behave("+13235550400", mode="answer", after=1)
        request = {
            "flow": "e2e-reminder",
            "to": "+13235550400",
            "from": "+19195550000",
            "variables": {"name": "Ada", "when": "on Tuesday at ten"},
        }
        headers = {"Authorization": f"Bearer {EXEC_TOKEN}"}
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{deployment.serve.url}/v1/executions", json=request, headers=headers
            ) as response:
                assert response.status == 201, await response.text()
                execution = await response.json()

            async def ended() -> dict[str, Any] | None:
                async with http.get(
                    f"{deployment.serve.url}/v1/executions/{execution['id']}", headers=headers
                ) as got:
                    view: dict[str, Any] = await got.json()
                return view if view["status"] == "ended" else None

            view = await phones.until("the reminder to end", ended, timeout=30)
        call = view["legs"]["caller"]
        assert await phones.heard(call) == [
            "Hello Ada, this is a reminder of your appointment on Tuesday at ten."
        ]
