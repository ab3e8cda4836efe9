"""The two price sources of the bundled catalogue, read as files, never imported.

By default they come from the installed distributions of the ``catalogue`` dependency
group (``pyproject.toml``: pinned versions, hash-locked in ``uv.lock``, installed by
``make sync``), so a build needs no download and the drift test in ``tests/tools`` can
run offline. ``--litellm-wheel`` / ``--genai-wheel`` read the same files out of wheel
archives instead.
"""

from __future__ import annotations

import importlib.metadata
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "COMPROMISED_LITELLM",
    "GENAI_FILE",
    "GENAI_PRICES_VERSION",
    "LITELLM_FILE",
    "LITELLM_VERSION",
    "SourceError",
    "SourceFiles",
    "copyright_line",
    "from_installed",
    "from_wheels",
    "mit_text",
]

LITELLM_VERSION = "1.109.1"
GENAI_PRICES_VERSION = "0.2.3"
# Published with malicious code; never read them, whatever the pin says.
COMPROMISED_LITELLM = frozenset({"1.82.7", "1.82.8"})
LITELLM_FILE = "litellm/model_prices_and_context_window_backup.json"
GENAI_FILE = "genai_prices/data.py"
_LICENSE = re.compile(r"\.dist-info/(licenses/)?LICEN[CS]E")


class SourceError(RuntimeError):
    """A price source is missing or is not the pinned version."""


@dataclass(frozen=True, slots=True)
class SourceFiles:
    """The bytes the build reads: LiteLLM's price JSON, genai-prices' data module, licenses."""

    litellm_json: bytes
    genai_data: str
    litellm_license: str
    genai_license: str


def _check_versions(litellm: str, genai: str) -> None:
    if litellm in COMPROMISED_LITELLM:
        raise SourceError(f"litellm {litellm} is a compromised release; refusing to read it")
    if (litellm, genai) != (LITELLM_VERSION, GENAI_PRICES_VERSION):
        raise SourceError(
            f"found litellm {litellm} and genai-prices {genai}, the build pins "
            f"litellm {LITELLM_VERSION} and genai-prices {GENAI_PRICES_VERSION}"
        )


def _installed(name: str) -> importlib.metadata.Distribution:
    try:
        return importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        raise SourceError(
            f"{name} is not installed: `make sync` installs the 'catalogue' dependency group"
        ) from None


def _license(names: list[str], read: dict[str, str]) -> str:
    found = sorted(n for n in names if _LICENSE.search(n))
    if not found:
        raise SourceError("no license file in a source distribution")
    return read[found[0]]


def from_installed() -> SourceFiles:
    """The sources from the installed ``litellm`` and ``genai-prices`` distributions."""
    lite, gen = _installed("litellm"), _installed("genai-prices")
    _check_versions(lite.version, gen.version)

    def text(dist: importlib.metadata.Distribution, member: str) -> str:
        path = Path(str(dist.locate_file(member)))
        if not path.is_file():
            raise SourceError(f"{member} is missing from the installed {dist.metadata['Name']}")
        return path.read_text(encoding="utf-8")

    def license_of(dist: importlib.metadata.Distribution) -> str:
        names = [str(f) for f in dist.files or ()]
        return _license(names, {n: text(dist, n) for n in names if _LICENSE.search(n)})

    return SourceFiles(
        litellm_json=text(lite, LITELLM_FILE).encode(),
        genai_data=text(gen, GENAI_FILE),
        litellm_license=license_of(lite),
        genai_license=license_of(gen),
    )


def _wheel_version(wheel: Path) -> str:
    parts = wheel.name.split("-")
    if len(parts) < 3 or not wheel.name.endswith(".whl"):
        raise SourceError(f"{wheel}: not a wheel file name")
    return parts[1]


def from_wheels(litellm_wheel: Path, genai_wheel: Path) -> SourceFiles:
    """The sources read out of the two pinned wheel archives."""
    _check_versions(_wheel_version(litellm_wheel), _wheel_version(genai_wheel))

    def read(wheel: Path, member: str | None) -> tuple[bytes, str]:
        with zipfile.ZipFile(wheel) as archive:
            names = archive.namelist()
            license_text = _license(names, {n: archive.read(n).decode() for n in names if _LICENSE.search(n)})
            return (archive.read(member) if member else b""), license_text

    lite, lite_license = read(litellm_wheel, LITELLM_FILE)
    gen, gen_license = read(genai_wheel, GENAI_FILE)
    return SourceFiles(lite, gen.decode(), lite_license, gen_license)


def mit_text(license_text: str) -> str:
    """The MIT license of a license file (LiteLLM's starts with a note on enterprise/)."""
    lines = license_text.strip().splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(r"^(The )?MIT License", line.strip())), 0)
    return "\n".join(lines[start:]).strip()


def copyright_line(license_text: str) -> str:
    match = re.search(r"^Copyright .*$", license_text, re.MULTILINE)
    if match is None:
        raise SourceError("no copyright line in a source license")
    return match.group(0).strip()
