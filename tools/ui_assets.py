"""Fetch the dashboard's vendored front-end files from npm, pinned and checked by sha256.

The dashboard (``src/spendgate/ui``) loads nothing from a CDN and downloads nothing at run
time: htmx and uPlot are committed under ``src/spendgate/ui/static/vendor/``. This script is
how they got there and how to re-check them: ``npm pack`` fetches exactly the pinned
versions, the named files are taken out of the tarballs and their sha256 must equal the
recorded one. Licences: NOTICE at the repository root.

Usage::

    python -m tools.ui_assets          # re-fetch and write the files (fails on a digest change)
    python -m tools.ui_assets --check  # only compare the committed files with the digests
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ASSETS", "VENDOR", "main"]

VENDOR = Path(__file__).resolve().parent.parent / "src" / "spendgate" / "ui" / "static" / "vendor"


@dataclass(frozen=True, slots=True)
class Asset:
    package: str
    version: str
    member: str  # path inside the npm tarball
    name: str  # file name under VENDOR
    sha256: str


ASSETS: tuple[Asset, ...] = (
    Asset(
        "htmx.org",
        "2.0.11",
        "package/dist/htmx.min.js",
        "htmx.min.js",
        "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717",
    ),
    Asset(
        "uplot",
        "1.6.9",
        "package/dist/uPlot.iife.min.js",
        "uPlot.iife.min.js",
        "a2ab9b9e41f7423cfdb7711af836e56f2664f59e97bd20450ea71ece92849725",
    ),
    Asset(
        "uplot",
        "1.6.9",
        "package/dist/uPlot.min.css",
        "uPlot.min.css",
        "e76383fd5f8facc0f156b6d28e3a7678dfb9908fa3e3db05f6b150b18fac172f",
    ),
)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fetch(work: Path) -> dict[str, bytes]:
    """Every asset's bytes, from the pinned npm tarballs."""
    found: dict[str, bytes] = {}
    for spec in sorted({f"{a.package}@{a.version}" for a in ASSETS}):
        out = subprocess.run(
            ["npm", "pack", spec, "--silent", "--pack-destination", str(work)],
            check=True,
            capture_output=True,
            text=True,
        )
        tarball = work / out.stdout.strip().splitlines()[-1]
        with tarfile.open(tarball) as tar:
            for asset in ASSETS:
                if f"{asset.package}@{asset.version}" != spec:
                    continue
                member = tar.extractfile(asset.member)
                if member is None:
                    raise SystemExit(f"{spec}: no {asset.member} in the tarball")
                found[asset.name] = member.read()
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check the committed files")
    args = parser.parse_args(argv)
    bad: list[str] = []
    if args.check:
        for asset in ASSETS:
            path = VENDOR / asset.name
            if not path.is_file() or _digest(path.read_bytes()) != asset.sha256:
                bad.append(asset.name)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            fetched = _fetch(Path(tmp))
        VENDOR.mkdir(parents=True, exist_ok=True)
        for asset in ASSETS:
            data = fetched[asset.name]
            if _digest(data) != asset.sha256:
                bad.append(f"{asset.name} (npm {asset.package}@{asset.version}: {_digest(data)})")
                continue
            (VENDOR / asset.name).write_bytes(data)
    for name in bad:
        print(f"sha256 mismatch: {name}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
