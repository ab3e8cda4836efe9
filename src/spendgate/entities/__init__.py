"""Entities: keys, users, teams, organizations, customers, tags and budget profiles.

* :mod:`~spendgate.entities.limits` — their budget and rate-limit fields, encoded (request
  → columns) and decoded (rows → :class:`LimitSpec`);
* :mod:`~spendgate.entities.reader` — the gateway's engine-bound reads (:class:`EntityReader`).
"""

from __future__ import annotations

from spendgate.entities.limits import CustomerOwners, KeyEntities, LimitSpec, decode_limits
from spendgate.entities.reader import EntityReader, KeyRecord

__all__ = ["CustomerOwners", "EntityReader", "KeyEntities", "KeyRecord", "LimitSpec", "decode_limits"]
