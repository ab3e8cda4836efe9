"""What the entity service refuses, said without HTTP: an unknown object, a conflict with
stored data, a value the rules do not allow. The management API's edge turns each into
its HTTP error (404, 409, 422) with the same message, ``param`` and ``code``.

::

    SpendgateError
    └── EntityError
        ├── EntityNotFound      an id (or alias, e-mail) names nothing
        ├── EntityConflict      it exists already, or is still in use
        └── EntityInvalid       a value the rules refuse (a team outside its organization …)
"""

from __future__ import annotations

from spendgate.errors import SpendgateError

__all__ = ["EntityConflict", "EntityError", "EntityInvalid", "EntityNotFound"]


class EntityError(SpendgateError):
    """Root of the entity service's refusals; ``param`` names the request field at fault."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class EntityNotFound(EntityError):
    """The object named does not exist."""


class EntityConflict(EntityError):
    """The object exists already (an id, an alias, a key), or is still in use."""


class EntityInvalid(EntityError):
    """A value the entity rules do not allow."""
