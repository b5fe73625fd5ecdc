"""The web view's query strings, parsed into typed requests (``/api/advise``)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import parse_qs

from meshd import advisor

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class BadQuery(ValueError):
    """The client's query string is wrong (HTTP 400); the message says which parameter and why."""


@dataclass(frozen=True)
class AdviseQuery:
    """``/api/advise?security=&scale=&throughput=&extensibility=[&tenant=&subnet=&l2_prefix=]``."""

    weights: advisor.Weights
    tenant: str | None = None
    subnet: str | None = None
    l2_prefix: int | None = None


def parse_advise(query: str) -> AdviseQuery:
    """The advise request of ``query`` (the part of the URL after ``?``).

    Raises:
      BadQuery: a need is missing or not a whole number 0..10, or tenant, subnet or l2_prefix is malformed.
    """
    try:
        params = parse_qs(query, keep_blank_values=True, strict_parsing=False, max_num_fields=16)
    except ValueError as exc:
        raise BadQuery(f"the query string is malformed: {exc}") from None
    one = {k: v[-1].strip() for k, v in params.items()}
    values = []
    for need in advisor.NEEDS:
        text = one.get(need, "")
        if not text:
            raise BadQuery(f"{need} is missing: give each of {', '.join(advisor.NEEDS)} as a whole number "
                           f"{advisor.WEIGHT_MIN}..{advisor.WEIGHT_MAX}")
        whole = len(text) <= 3 and text.isascii() and text.isdigit()
        if not whole or not advisor.WEIGHT_MIN <= int(text) <= advisor.WEIGHT_MAX:
            raise BadQuery(f"{need}={text[:20]!r}: use a whole number {advisor.WEIGHT_MIN}..{advisor.WEIGHT_MAX}")
        values.append(int(text))
    tenant = one.get("tenant") or None
    if tenant is not None and not _NAME.match(tenant):
        raise BadQuery(f"tenant={tenant[:70]!r}: up to 64 letters, digits, '_', '.' or '-'")
    subnet = one.get("subnet") or None
    if subnet is not None:
        try:
            subnet = str(ipaddress.IPv4Network(subnet, strict=False))
        except ValueError:
            raise BadQuery(f"subnet={subnet[:50]!r} is not an IPv4 CIDR (e.g. 10.1.0.0/24)") from None
    prefix = one.get("l2_prefix") or None
    if prefix is not None and (not (len(prefix) <= 3 and prefix.isascii() and prefix.isdigit()) or int(prefix) > 32):
        raise BadQuery(f"l2_prefix={prefix[:10]!r}: use a prefix length 0..32")
    return AdviseQuery(advisor.Weights(*values), tenant, subnet, int(prefix) if prefix is not None else None)
