"""The other OpenAI routes of the mock provider: completions, responses, embeddings, images, audio, models."""

from __future__ import annotations

import base64

import httpx
import openai
from mock_helpers import chat_prompt, tokens

from spendgate.providers.mock import MockServer


def test_completions(openai_client: openai.OpenAI) -> None:
    reply = openai_client.completions.create(
        model="gpt-3.5-turbo-instruct", prompt="Say hello twice", max_tokens=6
    )
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == tokens("Say hello twice")
    assert reply.usage.completion_tokens == 6
    assert tokens(reply.choices[0].text) == 6
    prompts = ["one", "two three four five"]
    reply = openai_client.completions.create(model="m", prompt=prompts, max_tokens=1)
    assert reply.usage is not None and reply.usage.prompt_tokens == 1 + 5


def test_completions_stream(openai_client: openai.OpenAI) -> None:
    chunks = list(
        openai_client.completions.create(
            model="m", prompt="abc", max_tokens=4, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    assert tokens("".join(c.choices[0].text for c in chunks if c.choices)) == 4


def test_responses(openai_client: openai.OpenAI) -> None:
    reply = openai_client.responses.create(
        model="gpt-5",
        instructions="Be brief.",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "What is 2+2?"}]}],
        max_output_tokens=12,
        extra_headers={"x-mock-reasoning-tokens": "5", "x-mock-cached-tokens": "2"},
    )
    assert reply.model == "gpt-5" and reply.status == "completed"
    assert reply.usage is not None
    assert reply.usage.input_tokens == chat_prompt([{"content": "What is 2+2?"}], "Be brief.")
    assert reply.usage.input_tokens_details.cached_tokens == 2
    assert reply.usage.output_tokens == 12
    assert reply.usage.output_tokens_details.reasoning_tokens == 5
    assert [item.type for item in reply.output] == ["reasoning", "message"]
    assert tokens(reply.output_text) == 7


def test_responses_stream(openai_client: openai.OpenAI) -> None:
    events = list(
        openai_client.responses.create(model="gpt-5", input="hello there", max_output_tokens=4, stream=True)
    )
    kinds = [event.type for event in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert kinds.count("response.output_text.delta") == 4
    assert [event.sequence_number for event in events] == list(range(len(events)))
    done = events[-1]
    assert done.type == "response.completed"
    assert done.response.usage is not None
    assert done.response.usage.input_tokens == 4 + tokens("hello there")
    assert done.response.usage.output_tokens == 4
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert text == done.response.output_text and tokens(text) == 4


def test_embeddings(openai_client: openai.OpenAI) -> None:
    # The SDK asks for base64 and decodes it.
    reply = openai_client.embeddings.create(
        model="text-embedding-3-small", input=["alpha", "beta gamma delta"]
    )
    assert [len(item.embedding) for item in reply.data] == [16, 16]
    assert reply.usage.prompt_tokens == reply.usage.total_tokens == 2 + 4
    again = openai_client.embeddings.create(model="m", input="alpha", dimensions=16, encoding_format="float")
    assert again.data[0].embedding == reply.data[0].embedding  # deterministic in the text
    tokenized = openai_client.embeddings.create(model="m", input=[1, 2, 3, 4, 5])
    assert tokenized.usage.prompt_tokens == 5


def test_gpt_image_reports_tokens(openai_client: openai.OpenAI) -> None:
    reply = openai_client.images.generate(
        model="gpt-image-1", prompt="a red fox", n=2, size="1024x1536", quality="low"
    )
    assert reply.data is not None and len(reply.data) == 2
    assert reply.data[0].b64_json and base64.b64decode(reply.data[0].b64_json).startswith(b"\x89PNG")
    assert reply.usage is not None
    assert reply.usage.input_tokens == tokens("a red fox")
    assert reply.usage.output_tokens == 2 * 408


def test_dall_e_reports_no_usage(openai_client: openai.OpenAI) -> None:
    reply = openai_client.images.generate(
        model="dall-e-3", prompt="a red fox", size="1024x1024", quality="hd"
    )
    assert reply.usage is None
    assert reply.data is not None and reply.data[0].url


def test_transcription_duration_from_file_size(openai_client: openai.OpenAI) -> None:
    audio = ("clip.wav", bytes(32_000 * 3 + 1), "audio/wav")
    reply = openai_client.audio.transcriptions.create(model="whisper-1", file=audio)
    assert tokens(reply.text) == 16
    usage = reply.usage
    assert usage is not None and usage.type == "duration" and usage.seconds == 4
    reply = openai_client.audio.transcriptions.create(
        model="whisper-1", file=audio, extra_headers={"x-mock-audio-seconds": "90.5"}
    )
    assert reply.usage is not None and reply.usage.type == "duration" and reply.usage.seconds == 90.5


def test_transcription_tokens_for_gpt_4o_transcribe(openai_client: openai.OpenAI) -> None:
    reply = openai_client.audio.transcriptions.create(
        model="gpt-4o-transcribe", file=("a.wav", bytes(64_000), "audio/wav"), prompt="names: Ann"
    )
    usage = reply.usage
    assert usage is not None and usage.type == "tokens"
    assert usage.input_tokens == 20 + tokens("names: Ann")
    assert usage.output_tokens == 16


def test_speech_returns_bytes(openai_client: openai.OpenAI) -> None:
    reply = openai_client.audio.speech.create(model="tts-1", voice="alloy", input="hello")
    assert len(reply.content) == 5 * 32
    assert reply.response.headers["content-type"] == "audio/mpeg"


def test_models(openai_client: openai.OpenAI) -> None:
    ids = [model.id for model in openai_client.models.list()]
    assert "gpt-4o" in ids
    assert openai_client.models.retrieve("my-fine-tune").id == "my-fine-tune"


def test_bad_requests_get_openai_errors(openai_client: openai.OpenAI, mock: MockServer) -> None:
    try:
        openai_client.chat.completions.create(model="m", messages=[])
    except openai.BadRequestError as exc:
        assert exc.param == "messages"
    else:  # pragma: no cover
        raise AssertionError("no error")
    response = httpx.post(f"{mock.url}/chat/completions", content=b"{not json")
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"
    response = httpx.post(f"{mock.url}/chat/completions", json={"model": "m"}, headers={"x-mock-bogus": "1"})
    assert response.status_code == 400 and "x-mock-bogus" in response.json()["error"]["message"]
    response = httpx.get(f"{mock.url}/nowhere")
    assert response.status_code == 404 and response.json()["error"]["code"] == "unknown_url"
    assert httpx.get(f"{mock.url}/chat/completions").status_code == 405
