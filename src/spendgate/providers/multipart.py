"""Just enough ``multipart/form-data`` to route an upload: read its text fields and
rewrite one (the ``model``), leaving the file parts byte for byte as they came."""

from __future__ import annotations

import re

__all__ = ["boundary_of", "form_fields", "replace_form_field"]

_NAME = re.compile(rb'\bname="([^"]*)"', re.IGNORECASE)
_FILENAME = re.compile(rb"\bfilename\*?=", re.IGNORECASE)


def boundary_of(content_type: str) -> bytes | None:
    match = re.search(r'boundary="?([^";]+)"?', content_type, re.IGNORECASE)
    return match.group(1).encode() if match else None


def _parts(raw: bytes, boundary: bytes) -> list[tuple[int, int, bytes, bytes]]:
    """(start, end) of each part's body, its header bytes and its body."""
    delimiter = b"--" + boundary
    out = []
    pos = raw.find(delimiter)
    while pos != -1:
        start = pos + len(delimiter)
        if raw[start : start + 2] == b"--":
            break
        head_end = raw.find(b"\r\n\r\n", start)
        nxt = raw.find(b"\r\n" + delimiter, start)
        if head_end == -1 or nxt == -1 or head_end > nxt:
            break
        body_start = head_end + 4
        out.append((body_start, nxt, raw[start:head_end], raw[body_start:nxt]))
        pos = nxt + 2
    return out


def form_fields(raw: bytes, content_type: str) -> dict[str, str] | None:
    """The text (non-file) fields of a form, or None when it is not multipart."""
    boundary = boundary_of(content_type)
    if boundary is None or not content_type.lower().startswith("multipart/form-data"):
        return None
    fields: dict[str, str] = {}
    for _, _, head, body in _parts(raw, boundary):
        name = _NAME.search(head)
        if name and not _FILENAME.search(head):
            fields[name.group(1).decode("utf-8", "replace")] = body.decode("utf-8", "replace")
    return fields


def replace_form_field(raw: bytes, content_type: str, name: str, value: str) -> bytes:
    """The form with text field ``name`` set to ``value`` (other bytes unchanged)."""
    boundary = boundary_of(content_type)
    if boundary is None:
        return raw
    for start, end, head, _ in _parts(raw, boundary):
        found = _NAME.search(head)
        if found and found.group(1).decode("utf-8", "replace") == name and not _FILENAME.search(head):
            return raw[:start] + value.encode() + raw[end:]
    return raw
