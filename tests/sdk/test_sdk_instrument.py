"""The instrumented clients (issue #14 item 1): the official openai and anthropic SDKs,
metered at their HTTP layer, cost what the gateway charges, to the nano-USD.

Every call goes once straight to the mock provider through an instrumented client and once
through a gateway (in-process, same mock, same request): ``spendgate.cost_of(result)`` must
equal ``completion_cost`` of the usage the SDK returned AND the gateway's
``x-spendgate-response-cost``, for openai and anthropic clients, sync, async and streamed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gateway"))
from gateway_helpers import MASTER_KEY, GatewayServer, Ledger, make_config

import spendgate
from spendgate.core.money import to_nano
from spendgate.core.usage import from_anthropic_message, from_openai_chat
from spendgate.providers.mock import MockServer, run_mock_provider
from spendgate.sdk import callbacks, results
from spendgate.sdk.httpx_compat import module_of_type

GPT = "gpt-4o"
CLAUDE = "claude-sonnet-4-6"
MESSAGES: list[Any] = [{"role": "user", "content": "Tell me about exact money, please."}]

# Usage shapes the mock produces on demand (forwarded by the gateway too).
VARIANTS = [
    pytest.param({}, id="plain"),
    pytest.param({"x-mock-cached-tokens": "6", "x-mock-completion-tokens": "9"}, id="cached"),
    pytest.param({"x-mock-reasoning-tokens": "5", "x-mock-completion-tokens": "12"}, id="reasoning"),
]
ANTHROPIC_VARIANTS = [
    pytest.param({}, id="plain"),
    pytest.param({"x-mock-cached-tokens": "4", "x-mock-cache-write-tokens": "3"}, id="cache"),
    pytest.param({"x-mock-cache-write-1h-tokens": "5"}, id="cache-1h"),
]


@pytest.fixture(scope="module")
def mock() -> Iterator[MockServer]:
    with run_mock_provider() as server:
        yield server


@pytest.fixture(scope="module")
def gateway_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sdk-gateway")


@pytest.fixture(scope="module")
def gateway(mock: MockServer, gateway_dir: Path) -> Iterator[GatewayServer]:
    config = make_config(mock.base_url, gateway_dir / "spendgate.db", gateway_dir / "journal")
    with GatewayServer(config) as server:
        yield server


@pytest.fixture
def oai(mock: MockServer) -> Iterator[openai.OpenAI]:
    with spendgate.instrument(openai.OpenAI(base_url=mock.url, api_key="sk-test", max_retries=0)) as c:
        yield c


@pytest.fixture
def via_gateway(gateway: GatewayServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.url, api_key=MASTER_KEY, max_retries=0, timeout=20) as c:
        yield c


@pytest.fixture
def claude(mock: MockServer) -> Iterator[anthropic.Anthropic]:
    with spendgate.anthropic.Anthropic(base_url=mock.base_url, api_key="sk-test", max_retries=0) as c:
        yield c


@pytest.fixture
def claude_via_gateway(gateway: GatewayServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gateway.base_url, api_key=MASTER_KEY, max_retries=0, timeout=20) as c:
        yield c


def _gateway_cost(raw: Any) -> int:
    """The gateway's x-spendgate-response-cost, in nano-USD."""
    return to_nano(Decimal(raw.headers["x-spendgate-response-cost"]))


def _chat(client: openai.OpenAI, headers: dict[str, str], **extra: Any) -> Any:
    return client.chat.completions.with_raw_response.create(
        model=GPT, messages=MESSAGES, max_tokens=14, extra_headers=headers, **extra
    )


# -- OpenAI ---------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", VARIANTS)
def test_openai_sync_costs_what_the_gateway_charges(
    oai: openai.OpenAI, via_gateway: openai.OpenAI, headers: dict[str, str]
) -> None:
    raw = _chat(oai, headers)
    completion = raw.parse()
    cost = spendgate.cost_of(completion)
    assert cost == spendgate.completion_cost(model=GPT, usage=from_openai_chat(completion.model_dump()))
    assert to_nano(cost) == _gateway_cost(_chat(via_gateway, headers))
    # the raw response carries the cost header, exactly as the gateway's does
    assert raw.headers["x-spendgate-response-cost"] == f"{cost:f}".rstrip("0").rstrip(".")
    assert spendgate.cost_of(raw) == cost
    assert spendgate.current_cost == cost


@pytest.mark.parametrize("headers", VARIANTS)
async def test_openai_async_costs_what_the_gateway_charges(
    mock: MockServer, via_gateway: openai.OpenAI, headers: dict[str, str]
) -> None:
    async with spendgate.openai.AsyncOpenAI(base_url=mock.url, api_key="sk-test", max_retries=0) as client:
        completion = await client.chat.completions.create(
            model=GPT, messages=MESSAGES, max_tokens=14, extra_headers=headers
        )
    cost = spendgate.cost_of(completion)
    assert cost == spendgate.completion_cost(model=GPT, usage=from_openai_chat(completion.model_dump()))
    assert to_nano(cost) == _gateway_cost(_chat(via_gateway, headers))


@pytest.mark.parametrize("include_usage", [False, True])
def test_openai_stream_costs_the_same_and_hides_the_usage_chunk_unless_asked(
    oai: openai.OpenAI, via_gateway: openai.OpenAI, mock: MockServer, include_usage: bool
) -> None:
    extra: dict[str, Any] = {"stream_options": {"include_usage": True}} if include_usage else {}
    stream = oai.chat.completions.create(model=GPT, messages=MESSAGES, max_tokens=14, stream=True, **extra)
    chunks = list(stream)
    # usage was asked upstream in both cases ...
    assert mock.requests()[-1]["body"]["stream_options"]["include_usage"] is True
    # ... and shown only to a caller who asked
    assert any(c.usage is not None for c in chunks) is include_usage
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    cost = spendgate.cost_of(stream)
    assert to_nano(cost) == _gateway_cost(_chat(via_gateway, {}))
    assert spendgate.current_cost == cost


async def test_openai_async_stream_costs_the_same(mock: MockServer, via_gateway: openai.OpenAI) -> None:
    async with spendgate.openai.AsyncOpenAI(base_url=mock.url, api_key="sk-test", max_retries=0) as client:
        stream = await client.chat.completions.create(
            model=GPT, messages=MESSAGES, max_tokens=14, stream=True
        )
        async for _ in stream:
            pass
    assert to_nano(spendgate.cost_of(stream)) == _gateway_cost(_chat(via_gateway, {}))


def test_other_openai_endpoints_cost_what_the_gateway_charges(
    oai: openai.OpenAI, via_gateway: openai.OpenAI
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = [
        ("embeddings", {"model": "text-embedding-3-small", "input": ["exact", "money in nano-USD"]}),
        ("responses", {"model": GPT, "input": "Say something short.", "max_output_tokens": 20}),
        ("completions", {"model": GPT, "prompt": "Once upon a time", "max_tokens": 7}),
        ("images", {"model": "gpt-image-1", "prompt": "a ledger", "size": "1024x1024", "quality": "low"}),
    ]
    for name, body in calls:
        mine = _resource(oai, name).with_raw_response
        theirs = _resource(via_gateway, name).with_raw_response
        create = "generate" if name == "images" else "create"
        raw = getattr(mine, create)(**body)
        cost = spendgate.cost_of(raw.parse())
        assert cost > 0, name
        assert to_nano(cost) == _gateway_cost(getattr(theirs, create)(**body)), name


def _resource(client: openai.OpenAI, name: str) -> Any:
    return {
        "embeddings": client.embeddings,
        "responses": client.responses,
        "completions": client.completions,
        "images": client.images,
    }[name]


# -- Anthropic ------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", ANTHROPIC_VARIANTS)
def test_anthropic_sync_costs_what_the_gateway_charges(
    claude: anthropic.Anthropic, claude_via_gateway: anthropic.Anthropic, headers: dict[str, str]
) -> None:
    kwargs: dict[str, Any] = {
        "model": CLAUDE,
        "max_tokens": 17,
        "messages": MESSAGES,
        "extra_headers": headers,
    }
    raw = claude.messages.with_raw_response.create(**kwargs)
    message = raw.parse()
    cost = spendgate.cost_of(message)
    assert cost == spendgate.completion_cost(model=CLAUDE, usage=from_anthropic_message(message.model_dump()))
    assert to_nano(cost) == _gateway_cost(claude_via_gateway.messages.with_raw_response.create(**kwargs))
    assert spendgate.cost_of(raw) == cost


async def test_anthropic_async_and_stream_cost_what_the_gateway_charges(
    mock: MockServer, claude_via_gateway: anthropic.Anthropic
) -> None:
    kwargs: dict[str, Any] = {"model": CLAUDE, "max_tokens": 17, "messages": MESSAGES}
    expected = _gateway_cost(claude_via_gateway.messages.with_raw_response.create(**kwargs))
    async with spendgate.anthropic.AsyncAnthropic(
        base_url=mock.base_url, api_key="sk", max_retries=0
    ) as client:
        message = await client.messages.create(**kwargs)
        assert to_nano(spendgate.cost_of(message)) == expected
        stream = await client.messages.create(**kwargs, stream=True)
        async for _ in stream:
            pass
        assert to_nano(spendgate.cost_of(stream)) == expected
    with spendgate.anthropic.Anthropic(base_url=mock.base_url, api_key="sk", max_retries=0) as sync_client:
        sync_stream = sync_client.messages.create(**kwargs, stream=True)
        events = [event.type for event in sync_stream]
        assert events[-1] == "message_stop"
        assert to_nano(spendgate.cost_of(sync_stream)) == expected
    assert to_nano(spendgate.current_cost) == 3 * expected


# -- how it is hooked -----------------------------------------------------------------------


def test_instrument_returns_a_metered_copy_and_leaves_the_original_alone(mock: MockServer) -> None:
    original = openai.OpenAI(base_url=mock.url, api_key="sk", max_retries=0)
    metered = spendgate.instrument(original)
    assert metered is not original
    plain = original.chat.completions.create(model=GPT, messages=MESSAGES, max_tokens=3)
    with pytest.raises(LookupError):
        spendgate.cost_of(plain)
    assert spendgate.current_cost == 0
    copy = metered.with_options(timeout=30)  # the SDK's own copy keeps the metered client
    assert spendgate.cost_of(copy.chat.completions.create(model=GPT, messages=MESSAGES, max_tokens=3)) > 0
    original.close()
    # the copy does not depend on the original's connection pool
    assert spendgate.cost_of(metered.chat.completions.create(model=GPT, messages=MESSAGES, max_tokens=3)) > 0
    metered.close()


def test_a_callers_own_http_client_is_metered_through_its_transport(mock: MockServer) -> None:
    seen: list[str] = []

    def hook(request: Any) -> None:
        seen.append(request.url.path)

    own = openai.DefaultHttpxClient(event_hooks={"request": [hook]})
    client = spendgate.openai.OpenAI(base_url=mock.url, api_key="sk", max_retries=0, http_client=own)
    completion = client.chat.completions.create(model=GPT, messages=MESSAGES, max_tokens=3)
    assert spendgate.cost_of(completion) > 0
    assert seen == ["/v1/chat/completions"]
    client.close()
    own.close()


def test_a_callers_own_http_client_keeps_its_params_auth_and_cookies(mock: MockServer) -> None:
    """The metered copy of a caller's client sends what the plain one sends."""
    sent: list[tuple[str, str | None, str | None]] = []

    def hook(request: Any) -> None:
        sent.append(
            (str(request.url.params), request.headers.get("authorization"), request.headers.get("cookie"))
        )

    own = openai.DefaultHttpxClient(
        params={"tenant": "t1"}, auth=("u", "p"), cookies={"session": "s1"}, event_hooks={"request": [hook]}
    )
    plain = openai.OpenAI(base_url=mock.url, api_key="sk", max_retries=0, http_client=own)
    plain.chat.completions.create(model=GPT, messages=MESSAGES, max_tokens=3)
    metered = spendgate.instrument(plain)
    assert spendgate.cost_of(metered.chat.completions.create(model=GPT, messages=MESSAGES, max_tokens=3)) > 0
    assert len(sent) == 2 and sent[0] == sent[1]
    assert sent[0] == ("tenant=t1", "Basic dTpw", "session=s1")
    metered.close()
    own.close()


def test_requests_that_are_not_priced_pass_through(oai: openai.OpenAI) -> None:
    models = oai.models.list()
    assert models is not None
    assert spendgate.current_cost == 0


def test_unpriced_model_is_unpriced_not_free(oai: openai.OpenAI) -> None:
    raw = oai.chat.completions.with_raw_response.create(
        model="no-such-model-anywhere", messages=MESSAGES, max_tokens=3
    )
    assert raw.headers["x-spendgate-response-cost"] == "unpriced"
    with pytest.raises(spendgate.UnpricedModelError):
        spendgate.cost_of(raw.parse())


def test_the_metadata_header_is_not_sent_upstream(mock: MockServer) -> None:
    http = module_of_type(openai.DefaultHttpxClient)
    sent: list[Any] = []

    class Capture(http.BaseTransport):  # type: ignore[name-defined]
        def __init__(self) -> None:
            self.inner = http.HTTPTransport()

        def handle_request(self, request: Any) -> Any:
            sent.append(request)
            return self.inner.handle_request(request)

        def close(self) -> None:
            self.inner.close()

    seen: list[dict[str, Any]] = []
    callbacks.success_callback.append(lambda kwargs, *rest: seen.append(kwargs["litellm_params"]["metadata"]))
    own = openai.DefaultHttpxClient(transport=Capture())
    client = spendgate.openai.OpenAI(base_url=mock.url, api_key="sk", max_retries=0, http_client=own)
    client.chat.completions.create(
        model=GPT,
        messages=MESSAGES,
        max_tokens=3,
        extra_headers={"x-spendgate-metadata": '{"tags": ["a"], "team": "t1"}'},
    )
    client.close()
    own.close()
    assert seen == [{"tags": ["a"], "team": "t1"}]
    assert len(sent) == 1
    assert not any(name.lower().startswith("x-spendgate") for name in sent[0].headers)


# -- the stream helpers (issue #14 item 1) ---------------------------------------------------


def _called_back() -> list[int]:
    """The cost of each call that ends from now on, as the callbacks see it (nano-USD)."""
    costs: list[int] = []
    callbacks.success_callback.append(lambda kw, *rest: costs.append(kw["cost_breakdown"].total_nanos))
    return costs


def _nanos(result: Any) -> int:
    return spendgate.breakdown_of(result).total_nanos


def test_openai_stream_helpers_and_their_final_objects_have_a_cost(
    oai: openai.OpenAI, via_gateway: openai.OpenAI
) -> None:
    costs = _called_back()
    with oai.chat.completions.stream(model=GPT, messages=MESSAGES, max_tokens=14) as stream:
        for _ in stream:
            pass
        completion = stream.get_final_completion()
    assert completion.id.startswith("chatcmpl-")
    assert to_nano(spendgate.cost_of(stream)) == to_nano(spendgate.cost_of(completion)) == costs[0]
    assert costs[0] == _gateway_cost(_chat(via_gateway, {}))
    with oai.responses.stream(model=GPT, input="Say something short.", max_output_tokens=20) as rstream:
        for _ in rstream:
            pass
        response = rstream.get_final_response()
    assert response.id.startswith("resp_")
    assert _nanos(rstream) == _nanos(response) == costs[1]
    theirs = via_gateway.responses.with_raw_response.create(
        model=GPT, input="Say something short.", max_output_tokens=20
    )
    assert costs[1] == _gateway_cost(theirs) > 0


async def test_async_openai_stream_helpers_and_their_final_objects_have_a_cost(mock: MockServer) -> None:
    costs = _called_back()
    async with spendgate.openai.AsyncOpenAI(base_url=mock.url, api_key="sk", max_retries=0) as client:
        async with client.chat.completions.stream(model=GPT, messages=MESSAGES, max_tokens=14) as stream:
            async for _ in stream:
                pass
            completion = await stream.get_final_completion()
        async with client.responses.stream(model=GPT, input="Hi", max_output_tokens=20) as rstream:
            async for _ in rstream:
                pass
            response = await rstream.get_final_response()
    assert len(costs) == 2 and all(c > 0 for c in costs)
    assert _nanos(stream) == _nanos(completion) == costs[0]
    assert _nanos(rstream) == _nanos(response) == costs[1]


def test_anthropic_stream_helper_and_its_final_message_have_a_cost(
    claude: anthropic.Anthropic, claude_via_gateway: anthropic.Anthropic
) -> None:
    kwargs: dict[str, Any] = {"model": CLAUDE, "max_tokens": 17, "messages": MESSAGES}
    with claude.messages.stream(**kwargs) as stream:
        for _ in stream.text_stream:
            pass
        message = stream.get_final_message()
    assert message.id.startswith("msg_")
    cost = spendgate.cost_of(message)
    assert spendgate.cost_of(stream) == cost
    assert to_nano(cost) == _gateway_cost(claude_via_gateway.messages.with_raw_response.create(**kwargs))


async def test_async_anthropic_stream_helper_and_its_final_message_have_a_cost(mock: MockServer) -> None:
    costs = _called_back()
    async with spendgate.anthropic.AsyncAnthropic(base_url=mock.base_url, api_key="sk", max_retries=0) as c:
        async with c.messages.stream(model=CLAUDE, max_tokens=17, messages=MESSAGES) as stream:
            async for _ in stream.text_stream:
                pass
            message = await stream.get_final_message()
    assert _nanos(message) == _nanos(stream) == costs[0] > 0


def _chat_answer(answer_id: str, output: int) -> dict[str, Any]:
    """A chat completion with its own id and ``output`` tokens."""
    return {
        "id": answer_id,
        "object": "chat.completion",
        "created": 1,
        "model": GPT,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": output, "total_tokens": 3 + output},
    }


def test_an_answer_id_two_calls_shared_finds_neither() -> None:
    """A server that reuses answer ids: the id alone never gives a wrong price."""
    answers = iter([("chatcmpl-same", 5), ("chatcmpl-same", 50), ("chatcmpl-other", 7)])

    def handler(request: Any) -> Any:
        return http.Response(200, json=_chat_answer(*next(answers)))

    http = module_of_type(openai.DefaultHttpxClient)
    own = openai.DefaultHttpxClient(transport=http.MockTransport(handler))
    client = spendgate.openai.OpenAI(base_url="http://upstream.test/v1", api_key="sk", http_client=own)
    first, second, third = (
        client.chat.completions.create(model=GPT, messages=MESSAGES, max_tokens=60) for _ in range(3)
    )
    assert spendgate.cost_of(first) < spendgate.cost_of(second)  # each by its request id
    copies = [openai.types.chat.ChatCompletion.model_validate(r.model_dump()) for r in (first, second, third)]
    assert all(getattr(c, "_request_id", None) is None for c in copies)  # found by the answer's id only
    for shared in copies[:2]:
        with pytest.raises(LookupError):
            spendgate.cost_of(shared)
    assert spendgate.cost_of(copies[2]) == spendgate.cost_of(third)
    client.close()
    own.close()


def _echoing_request_id(header: str, body: Any) -> Any:
    """An upstream that answers every call with the request id the client sent (a tracing
    proxy's habit), each answer with its own id and a different usage."""
    outputs = iter(range(1, 100))

    def handler(request: Any) -> Any:
        output = 10 ** next(outputs)
        return http.Response(200, json=body(output), headers={header: request.headers[header]})

    http = module_of_type(openai.DefaultHttpxClient)
    return http.MockTransport(handler)


def _anthropic_answer(answer_id: str, output: int) -> dict[str, Any]:
    """An Anthropic message with its own id and ``output`` tokens."""
    return {
        "id": answer_id,
        "type": "message",
        "role": "assistant",
        "model": CLAUDE,
        "content": [{"type": "text", "text": "x"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": output},
    }


@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
def test_a_request_id_two_calls_shared_never_gives_the_other_calls_price(sdk: str) -> None:
    """The client sends one request id on every call and the upstream echoes it: each
    result's cost is its own (found by its answer's id), never the other call's."""
    counter = iter(range(100))
    openai_like = sdk == "openai"
    header = "x-request-id" if openai_like else "request-id"
    model = GPT if openai_like else CLAUDE
    usage_of = from_openai_chat if openai_like else from_anthropic_message

    def answer(output: int) -> dict[str, Any]:
        n = next(counter)
        return _chat_answer(f"chatcmpl-{n}", output) if openai_like else _anthropic_answer(f"msg_{n}", output)

    module: Any = openai if openai_like else anthropic
    client: Any = (spendgate.openai.OpenAI if openai_like else spendgate.anthropic.Anthropic)(
        base_url="http://upstream.test/v1" if openai_like else "http://upstream.test",
        api_key="sk",
        http_client=module.DefaultHttpxClient(transport=_echoing_request_id(header, answer)),
        default_headers={header: "trace-42"},
    )
    call = client.chat.completions.create if openai_like else client.messages.create
    small, big = (call(model=model, messages=MESSAGES, max_tokens=500) for _ in range(2))
    assert small._request_id == big._request_id == "trace-42"
    for result in (small, big):
        expected = spendgate.price(model, usage_of(result.model_dump())).total
        assert spendgate.cost_of(result) == expected
    assert spendgate.cost_of(small) < spendgate.cost_of(big)
    client.close()


# -- a stream the upstream cuts (issue #14 doc review, item 3) --------------------------------


@pytest.mark.parametrize("events", ["0", "1"])  # none; the role chunk only (no text either way)
def test_a_stream_cut_before_any_text_is_billed_and_recorded_as_the_gateway_does(
    oai: openai.OpenAI, via_gateway: openai.OpenAI, gateway_dir: Path, events: str
) -> None:
    """The upstream answered (200) and then dropped the connection before any text: the
    gateway records ``error`` and bills the prompt estimate (the provider may have billed
    the prompt); the SDK bills and records it the same, to the nano-USD."""
    failed: list[dict[str, Any]] = []
    callbacks.failure_callback.append(lambda kwargs, *rest: failed.append(kwargs))
    cut = {"x-mock-disconnect-after": events}
    theirs = via_gateway.chat.completions.create(
        model=GPT, messages=MESSAGES, max_tokens=14, stream=True, extra_headers=cut
    )
    request_id = theirs.response.headers["x-spendgate-request-id"]
    with pytest.raises(openai.APIError):
        for _ in theirs:
            pass
    [row] = Ledger(gateway_dir / "spendgate.db").operation(request_id, 1)
    mine = oai.chat.completions.create(
        model=GPT, messages=MESSAGES, max_tokens=14, stream=True, extra_headers=cut
    )
    with pytest.raises(openai.APIConnectionError):
        for _ in mine:
            pass
    [kwargs] = failed
    slo = kwargs["standard_logging_object"]
    assert (row["status"], bool(row["estimated"]), row["output_tokens"]) == ("error", True, 0)
    assert (slo["spendgate_outcome"], slo["spendgate_estimated"], slo["completion_tokens"]) == (
        "error",
        True,
        0,
    )
    assert slo["status"] == "failure" and kwargs["exception"] is not None
    assert row["input_tokens"] == slo["prompt_tokens"] > 0
    assert row["cost_nanos"] == kwargs["cost_breakdown"].total_nanos == _nanos(mine) > 0
    assert to_nano(spendgate.current_cost) == row["cost_nanos"]


def test_small_costs_print_in_plain_notation(oai: openai.OpenAI) -> None:
    """Most calls cost less than 1e-6 USD, where str(Decimal) turns to 4E-8."""
    embedding = oai.embeddings.create(model="text-embedding-3-small", input="hi")
    cost = spendgate.cost_of(embedding)
    assert 0 < cost < Decimal("0.000001")
    assert cost == spendgate.breakdown_of(embedding).total  # the same exact value
    text = str(cost)
    assert "E" not in text and Decimal(text) == cost and text.startswith("0.0000000")
    assert repr(cost) == f"Decimal('{text}')"
    assert str(spendgate.current_cost) == text
    assert f"{cost}" == text and f"{cost:f}" == text


@pytest.mark.parametrize(
    ("head", "event", "expected"),
    [
        (b'{"id":"chatcmpl-1","object":"chat.completion","choices":[]}', False, "chatcmpl-1"),
        (b' {"object":"response","id":"resp_1","output":[{"id":"msg_2"}]}', False, "resp_1"),
        (b'{"model":"m","usage":{"id":"u"},"id":"late"}', False, None),  # never a nested id
        (b'{"id":"","x":1}', False, None),
        (b'{"id":"a\\"b"}', False, None),
        (b'data: {"type":"message_start","message":{"id":"msg_9","type":"message"}}\n\n', True, "msg_9"),
        (
            b'event: response.created\ndata: {"type":"response.created","response":{"id":"resp_3"}}',
            True,
            "resp_3",
        ),
    ],
)
def test_the_answers_own_id_is_read_from_its_start(head: bytes, event: bool, expected: str | None) -> None:
    assert results.answer_id(head, event=event) == expected
