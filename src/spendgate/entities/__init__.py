"""Entities: keys, users, teams, organizations, customers, tags and budget profiles.

* :mod:`~spendgate.entities.codec` — their budget and rate-limit fields, encoded (request
  → columns) and decoded (rows → :class:`LimitSpec`);
* :mod:`~spendgate.entities.reader` — the gateway's engine-bound reads (:class:`EntityReader`);
* :mod:`~spendgate.entities.repository` — every other entity statement, over a session the
  caller commits (:class:`EntityRepository`);
* :mod:`~spendgate.entities.service` — create / update / read / delete, written once for
  every kind (:class:`EntityService`), with :mod:`~spendgate.entities.memberships` and
  :mod:`~spendgate.entities.keys` for the rules of team members and keys, and
  :mod:`~spendgate.entities.deletion` for what a delete takes with it or is refused by;
* :mod:`~spendgate.entities.errors` — what the service refuses, without HTTP.
"""

from __future__ import annotations

from spendgate.entities.codec import CustomerOwners, KeyEntities, LimitSpec, decode_limits
from spendgate.entities.errors import EntityConflict, EntityError, EntityInvalid, EntityNotFound
from spendgate.entities.reader import EntityReader, KeyRecord
from spendgate.entities.repository import EntityRepository
from spendgate.entities.service import EntityKind, EntityService

__all__ = [
    "CustomerOwners",
    "EntityConflict",
    "EntityError",
    "EntityInvalid",
    "EntityKind",
    "EntityNotFound",
    "EntityReader",
    "EntityRepository",
    "EntityService",
    "KeyEntities",
    "KeyRecord",
    "LimitSpec",
    "decode_limits",
]
