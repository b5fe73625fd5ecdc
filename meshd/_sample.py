"""The commented sample configuration (``meshd config sample``, deploy/meshd.toml).

Built from the config dataclasses themselves: each field's ``#:`` comment
lines in the source become its comment in the sample, so the sample cannot
drift from the code.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import tomli_w

from meshd.config import Config

HEADER = """\
# meshd configuration: /etc/meshd/meshd.toml
#
# Every setting with its default. Uncomment and change what you need; check the
# result with `meshd config check /etc/meshd/meshd.toml`. Units are in the names
# (_s seconds, _ms milliseconds, _bytes, _kbit). `--set section.field=value`
# flags override this file. Regenerate with `meshd config sample`.
"""


def field_docs(cls: type) -> dict[str, list[str]]:
    """``{field name: its #: comment lines}`` read from the class's source."""
    docs: dict[str, list[str]] = {}
    pending: list[str] = []
    for line in inspect.getsource(cls).splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
        elif ":" in stripped and not stripped.startswith(("#", "def ", "@", "class ", '"')) and pending:
            docs[stripped.split(":", 1)[0].strip()] = pending
            pending = []
        elif not stripped.startswith("#"):
            pending = []
    return docs


def sample_toml(cfg: Config | None = None) -> str:
    """The whole configuration as commented-out TOML with each field's documentation."""
    cfg = cfg or Config.lan()
    out = [HEADER]
    for section in dataclasses.fields(cfg):
        value = getattr(cfg, section.name)
        doc = inspect.getdoc(type(value))
        assert doc is not None, f"config section {type(value).__name__} has no docstring"
        out.append(f"\n[{section.name}]\n# {doc.splitlines()[0]}\n")
        docs = field_docs(type(value))
        for f in dataclasses.fields(value):
            for line in docs.get(f.name, []):
                out.append(f"\n# {line}" if line else "\n#")
            out.append(f"\n# {_toml_line(f.name, getattr(value, f.name))}\n")
    return "".join(out)


def _toml_line(name: str, value: Any) -> str:
    if isinstance(value, tuple):
        value = list(value)
    return tomli_w.dumps({name: value}).strip()
