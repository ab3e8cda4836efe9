"""Build tooling for the bundled price catalogue (not shipped in the wheel).

Run ``python -m tools.catalogue build`` from the repository root; see :mod:`.build`.
"""

from __future__ import annotations
