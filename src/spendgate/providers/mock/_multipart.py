"""A minimal ``multipart/form-data`` parser (file uploads to the mock provider)."""

from __future__ import annotations

import re

__all__ = ["parse_form"]

_PARAM = re.compile(rb';\s*([a-zA-Z0-9_*-]+)="?([^";]*)"?')


def parse_form(body: bytes, content_type: str) -> dict[str, bytes | str]:
    """Parse a form: file fields become ``bytes`` (their file name under ``<name>.filename``),
    other fields ``str``.

    Raises:
        ValueError: not multipart, or no boundary.
    """
    params = dict(_PARAM.findall(b";" + content_type.partition(";")[2].encode()))
    boundary = params.get(b"boundary")
    if not content_type.startswith("multipart/form-data") or not boundary:
        raise ValueError("expected multipart/form-data with a boundary")
    form: dict[str, bytes | str] = {}
    for part in body.split(b"--" + boundary)[1:]:
        if part.startswith(b"--"):
            break
        head, _, data = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        data = data.removesuffix(b"\r\n")
        disposition = b""
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-disposition":
                disposition = value
        fields = dict(_PARAM.findall(disposition))
        field_name = fields.get(b"name", b"").decode()
        if b"filename" in fields:
            form[field_name] = data
            form[f"{field_name}.filename"] = fields[b"filename"].decode()
        else:
            form[field_name] = data.decode()
    return form
