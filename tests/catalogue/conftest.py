"""Make the repository root importable, so ``tools.catalogue`` (not shipped) can be read by
the reconciled-catalogue tests, whichever test directory pytest collects first."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
