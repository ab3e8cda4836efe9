"""Upstream providers: adapters for the LLM APIs the gateway forwards to, and the mock provider."""

from __future__ import annotations
