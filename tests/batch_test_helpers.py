"""What the batch tests of several folders share (imported as a plain module): the
reference bill of a provider's output file, priced here independently of the gateway, and a
one-model gateway config with the row of a batch its provider does not know."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

import spendgate
from spendgate.batches import ManagedObjectRepository, new_object_id
from spendgate.config import GatewayConfig, parse_config
from spendgate.core.money import to_nano
from spendgate.server import Services
from spendgate.stores.database.models import ManagedObject

__all__ = ["add_unknown_batch", "batch_gateway_config", "price_output"]


def price_output(output: bytes, at: datetime) -> tuple[int, int]:
    """(the bill in nano-USD, the number of lines) of an OpenAI batch output file: each
    line's response priced with ``spendgate.completion_cost(batch=True, at=at)``."""
    bodies = [json.loads(line)["response"]["body"] for line in output.splitlines() if line.strip()]
    return sum(to_nano(spendgate.completion_cost(body, batch=True, at=at)) for body in bodies), len(bodies)


def batch_gateway_config(tmp_path: Path, mock_url: str, master_key: str, **general: Any) -> GatewayConfig:
    """The model group ``batch-model`` (gpt-4o-mini on the mock at ``mock_url``), SQLite
    (``gw.db``) and the journal in ``tmp_path``; ``general`` on top."""
    settings: dict[str, Any] = {
        "master_key": master_key,
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}",
        "journal_dir": str(tmp_path / "journal"),
        **general,
    }
    model = {
        "model_name": "batch-model",
        "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": mock_url, "api_key": "sk-b"},
    }
    return parse_config({"model_list": [model], "general_settings": settings}, environ={})


async def add_unknown_batch(services: Services) -> str:
    """Write the row of a validating ``batch-model`` batch (of key ``key-a``) whose provider
    does not know it (a cycle retires it as stale); its id."""
    batch_id = new_object_id("batch", "openai")
    async with AsyncSession(services.engine) as session:
        await ManagedObjectRepository(session).add(
            ManagedObject(
                id=batch_id,
                kind="batch",
                api="openai",
                deployment_id=services.pipeline.router.candidates("batch-model")[0].id,
                provider_id="batch_unknown",
                model_group="batch-model",
                status="validating",
                api_key="key-a",
            )
        )
        await session.commit()
    return batch_id
