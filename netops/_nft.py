"""nftables through libnftables (in-process, no fork of the nft binary).

One context per call, created and freed in the calling thread; a call for
another namespace runs wholly inside it (``InNetns``). A script is one nft
transaction: it applies completely or not at all.
"""

from __future__ import annotations

import ctypes
import errno
import json
from dataclasses import dataclass

from netops._errors import NetopsError
from netops._nl import InNetns

_lib = ctypes.CDLL("libnftables.so.1", use_errno=True)
_lib.nft_ctx_new.restype = ctypes.c_void_p
_lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
_lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
_lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
_lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
_lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
_lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
_lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
_lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
_lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
_lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
NFT_CTX_OUTPUT_JSON = 1 << 4
NFT_CTX_OUTPUT_HANDLE = 1 << 3


def _run_here(script: str, json_out: bool) -> str:
    ctx = _lib.nft_ctx_new(0)
    try:
        _lib.nft_ctx_buffer_output(ctx)
        _lib.nft_ctx_buffer_error(ctx)
        if json_out:
            _lib.nft_ctx_output_set_flags(ctx, NFT_CTX_OUTPUT_JSON)
        rc = _lib.nft_run_cmd_from_buffer(ctx, script.encode())
        out = (_lib.nft_ctx_get_output_buffer(ctx) or b"").decode()
        err = (_lib.nft_ctx_get_error_buffer(ctx) or b"").decode().strip()
    finally:
        _lib.nft_ctx_free(ctx)
    if rc != 0:
        first = script.strip().splitlines()[0] if script.strip() else ""
        raise NetopsError("apply nft script", repr(first[:80]), errno.EINVAL, err.splitlines()[0] if err else "")
    return out


def run(script: str, netns: str | None = None, json_out: bool = False) -> str:
    """Run an nft script (one transaction); returns nft's output.

    Raises:
        NetopsError: nft rejected the script (the hint is nft's first error line).
    """
    if netns is None:
        return _run_here(script, json_out)
    with InNetns(netns):
        return _run_here(script, json_out)


def list_table(family: str, table: str, netns: str | None = None) -> list[dict] | None:
    """The table as nft's JSON objects, or None when it does not exist."""
    try:
        out = run(f"list table {family} {table}", netns, json_out=True)
    except NetopsError:
        return None
    return json.loads(out).get("nftables", [])


@dataclass(frozen=True, slots=True)
class NftTable:
    """A table's identity tag (the comment on its first rule) and its sets' elements.

    Elements are canonical strings: ``"mv1a2b . 10.1.0.2"``, ``"mg-7 . 10.2.0.0/24"``, ``"mv1a2b"``.
    """

    tag: str
    sets: dict[str, frozenset[str]]


def _element(value: object) -> str:
    if isinstance(value, list) and len(value) == 2:  # a map's element: [key, value]
        return f"{_element(value[0])} : {_verdict(value[1])}"
    if isinstance(value, dict):
        if "concat" in value:
            return " . ".join(_element(v) for v in value["concat"])
        if "prefix" in value:
            return f"{value['prefix']['addr']}/{value['prefix']['len']}"
        if "elem" in value:
            return _element(value["elem"]["val"])
    return str(value)


def _verdict(value: object) -> str:
    """``{"accept": null}`` → ``accept``, ``{"jump": {"target": "x"}}`` → ``jump x``; other values as elements."""
    if isinstance(value, dict) and len(value) == 1:
        (kind, arg), = value.items()
        if arg is None:
            return str(kind)
        if isinstance(arg, dict) and "target" in arg:
            return f"{kind} {arg['target']}"
    return _element(value)


def dump_table(family: str, table: str, netns: str | None = None) -> NftTable | None:
    """The table's tag and the elements of its sets and maps (``"key : value"``), or None when
    the table does not exist."""
    objects = list_table(family, table, netns)
    if objects is None:
        return None
    tag, sets = "", {}
    for obj in objects:
        if "set" in obj or "map" in obj:
            s = obj.get("set") or obj["map"]
            sets[s["name"]] = frozenset(_element(e) for e in s.get("elem", []))
        elif "rule" in obj and not tag:
            tag = obj["rule"].get("comment", "")
    return NftTable(tag, sets)
