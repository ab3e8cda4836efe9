"""The mock's legacy completions: pre-tokenized prompts count one token an id, and
``best_of`` candidates are billed as OpenAI bills them (``n`` returned)."""

from __future__ import annotations

import openai
import pytest


@pytest.mark.parametrize(
    ("prompt", "tokens"), [([5, 6, 7], 3), ([[1, 2], [3, 4, 5]], 5), (["abcd", "ef"], 2)]
)
def test_token_id_prompts_count_one_token_an_id(
    openai_client: openai.OpenAI, prompt: list[int] | list[list[int]] | list[str], tokens: int
) -> None:
    reply = openai_client.completions.create(model="m", prompt=prompt, max_tokens=2)
    assert reply.usage is not None and reply.usage.prompt_tokens == tokens


def test_best_of_candidates_are_billed(openai_client: openai.OpenAI) -> None:
    reply = openai_client.completions.create(model="m", prompt="abcd", max_tokens=5, best_of=3, n=2)
    assert len(reply.choices) == 2
    assert reply.usage is not None and reply.usage.completion_tokens == 15


def test_best_of_below_n_is_refused(openai_client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        openai_client.completions.create(model="m", prompt="abcd", max_tokens=5, best_of=1, n=2)
