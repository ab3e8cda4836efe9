"""Many concurrent clients, each checking that every answer it gets belongs to its own request.

Used by ``test_gateway_answers.py`` (a few seconds) and ``reliability/answers.py`` (as long
as asked). Each client is its own official ``openai.AsyncOpenAI`` client and loops until the
deadline, alternating streamed and non-streamed chat calls. Every prompt carries a unique
marker and every call asks for its own number of tokens; the mock provider derives the
answer from the request (``docs/mock-provider.md``): the id is
``chatcmpl-<12 hex of SHA-256 of the last message>-…``, the text is exactly the requested
number of tokens, the usage counts the prompt. An answer is *wrong* when any of these does
not match its request; a call that does not end within the timeout is a *hang*.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import openai
from openai.types.chat import ChatCompletionMessageParam

from spendgate.providers.mock import chat_prompt_tokens, generate_text

__all__ = ["Tally", "hammer", "ledger_problems"]

REQUEST_ID = "x-spendgate-request-id"


@dataclass
class Tally:
    """What the clients saw."""

    calls: int = 0
    streamed: int = 0
    answered: list[str] = field(default_factory=list)
    """Request ids (``x-spendgate-request-id``) of the calls answered correctly."""
    wrong: list[str] = field(default_factory=list)
    hangs: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    def summary(self) -> dict[str, object]:
        return {
            "calls": self.calls,
            "streamed": self.streamed,
            "answered_correctly": len(self.answered),
            "wrong_answers": len(self.wrong),
            "hangs": self.hangs,
            "errors": dict(self.errors),
            "first_wrong": self.wrong[:5],
        }


@dataclass(frozen=True, slots=True)
class _Ask:
    messages: list[ChatCompletionMessageParam]
    max_tokens: int
    digest: str

    @classmethod
    def new(cls, client: int, number: int, rng: random.Random) -> _Ask:
        marker = f"client {client} call {number} {uuid.uuid4().hex}"
        content = f"Reply to request <{marker}>" + " pad" * rng.randrange(0, 40)
        digest = hashlib.sha256(content.encode()).hexdigest()[:12]
        return cls([{"role": "user", "content": content}], rng.randrange(1, 33), digest)

    def check(self, ids: Iterable[str], text: str, usage: openai.types.CompletionUsage | None) -> str | None:
        """What is wrong with an answer (None: it is this request's)."""
        prefix = f"chatcmpl-{self.digest}-"
        strangers = sorted({i for i in ids if not i.startswith(prefix)})
        if strangers:
            return f"expected an id {prefix}…, got {strangers[:3]}"
        if text != generate_text(self.max_tokens):
            return f"expected {self.max_tokens} tokens of text, got {text[:60]!r}"
        if usage is None:
            return "no usage"
        expected = (chat_prompt_tokens(self.messages), self.max_tokens)
        if (usage.prompt_tokens, usage.completion_tokens) != expected:
            return f"usage {(usage.prompt_tokens, usage.completion_tokens)}, expected {expected}"
        return None


async def _call(client: openai.AsyncOpenAI, ask: _Ask, stream: bool) -> tuple[str, str | None]:
    """(request id, what is wrong or None)."""
    if not stream:
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=ask.messages, max_tokens=ask.max_tokens
        )
        reply = raw.parse()
        text = "".join(choice.message.content or "" for choice in reply.choices)
        return raw.headers[REQUEST_ID], ask.check([reply.id], text, reply.usage)
    raw_stream = await client.chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=ask.messages,
        max_tokens=ask.max_tokens,
        stream=True,
        stream_options={"include_usage": True},
    )
    ids: list[str] = []
    parts: list[str] = []
    usage = None
    async for chunk in raw_stream.parse():
        ids.append(chunk.id)
        parts.extend(choice.delta.content or "" for choice in chunk.choices)
        usage = chunk.usage or usage
    return raw_stream.headers[REQUEST_ID], ask.check(ids, "".join(parts), usage)


async def _client(
    client: openai.AsyncOpenAI, index: int, deadline: float, timeout: float, tally: Tally, min_each: int
) -> None:
    rng = random.Random(index)
    loop = asyncio.get_running_loop()
    number = 0
    # Past the deadline only while either kind has fewer than ``min_each`` calls (a loaded
    # machine makes fewer in the time), and never more than a minute past it.
    while loop.time() < deadline or (
        min(tally.streamed, tally.calls - tally.streamed) < min_each and loop.time() < deadline + 60
    ):
        number += 1
        stream = (index + number) % 2 == 0
        ask = _Ask.new(index, number, rng)
        tally.calls += 1
        tally.streamed += stream
        try:
            async with asyncio.timeout(timeout):
                request_id, problem = await _call(client, ask, stream)
        except TimeoutError:
            tally.hangs += 1
            continue
        except openai.APIError as exc:  # an error answer (status) or a broken connection
            tally.errors[f"{type(exc).__name__} {getattr(exc, 'status_code', '')}".strip()] += 1
            continue
        except Exception as exc:  # an answer that is not even well-formed (e.g. two bodies in one)
            tally.wrong.append(f"({'streamed' if stream else 'whole'}): {type(exc).__name__}: {exc}"[:300])
            continue
        if problem is None:
            tally.answered.append(request_id)
        else:
            tally.wrong.append(f"{request_id} ({'streamed' if stream else 'whole'}): {problem}")


async def hammer(
    base_url: str, api_key: str, *, clients: int, duration: float, timeout: float = 30.0, min_each: int = 0
) -> Tally:
    """Run ``clients`` concurrent clients for ``duration`` seconds against the gateway at
    ``base_url`` (its ``/v1``), and on until at least ``min_each`` streamed and ``min_each``
    whole calls were started; every call ends within ``timeout`` or counts as a hang."""
    tally = Tally()
    async with contextlib.AsyncExitStack() as stack:
        # Made before the clock starts: making one (its TLS context) takes tens of milliseconds.
        made = [
            await stack.enter_async_context(
                openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=timeout)
            )
            for _ in range(clients)
        ]
        deadline = asyncio.get_running_loop().time() + duration
        await asyncio.gather(
            *(_client(client, i, deadline, timeout, tally, min_each) for i, client in enumerate(made))
        )
    return tally


def ledger_problems(answered: Iterable[str], rows_per_event: Counter[str]) -> dict[str, int]:
    """Answered request ids missing from the ledger, or in it more than once."""
    answered = list(answered)
    return {
        "missing": sum(1 for rid in answered if rows_per_event[rid] == 0),
        "doubled": sum(1 for rid in answered if rows_per_event[rid] > 1),
    }
