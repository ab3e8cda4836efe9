"""The generated text always has exactly the reported number of tokens."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from mock_helpers import chat_prompt, tokens

from spendgate.providers.mock import chat_prompt_tokens, count_tokens, generate_text
from spendgate.providers.mock.tokens import text_pieces


@given(st.integers(min_value=0, max_value=3000))
def test_generated_text_has_n_tokens(n: int) -> None:
    text = generate_text(n)
    assert tokens(text) == count_tokens(text) == n
    pieces = text_pieces(n)
    assert "".join(pieces) == text and all(len(piece) == 4 for piece in pieces)


@given(st.lists(st.text(max_size=40), max_size=5), st.text(max_size=20))
def test_prompt_formula_matches_the_documented_one(contents: list[str], system: str) -> None:
    messages = [{"role": "user", "content": content} for content in contents]
    assert chat_prompt_tokens(messages, system or None) == chat_prompt(messages, system or None)
