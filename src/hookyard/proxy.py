"""A request as its sender made it when a proxy stands in between: the client's address and
whether it came over https (docs/security.md, "Behind a proxy").

uvicorn already rewrites the peer address and scheme from `X-Forwarded-For` and
`X-Forwarded-Proto` when the peer is a proxy it trusts (`--forwarded-allow-ips`, by default
127.0.0.1 only). A proxy on another machine is trusted only when the operator says so with
`HOOKYARD_TRUST_PROXY_HEADERS`, which the ingress already reads for `X-Forwarded-Proto` and
`-Host`. Then:

- the client is the *last* address of `X-Forwarded-For`: the one the proxy in front of us
  appended. Addresses before it were written by whoever sent the request, so a client could
  pick any of them to escape its own throttle;
- https is the *first* value of `X-Forwarded-Proto`, as the ingress reads it (the scheme
  the outermost proxy was called with).

Without the setting these headers are ignored: anyone can send them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

# An IPv6 client usually holds a whole /64; counting its addresses one by one would let
# it rotate through 2⁶⁴ of them.
_IPV6_PREFIX = 64


def _counted(address: str) -> str | None:
    try:
        parsed = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, _IPV6_PREFIX), strict=False))
    return str(parsed)


def client_address(
    client: tuple[str, int] | None, headers: Mapping[str, str], trust_proxy_headers: bool
) -> str:
    """The address a request came from, as a throttle should count it: an IPv4 address,
    an IPv6 /64 network (`2001:db8:1:2::/64`), or the peer's name when it is no address
    (a test client, a Unix socket)."""
    peer = client[0] if client else "unknown"
    if trust_proxy_headers:
        forwarded = _counted(headers.get("x-forwarded-for", "").rsplit(",", 1)[-1])
        if forwarded is not None:
            return forwarded
    return _counted(peer) or peer[:100]


def is_https(scheme: str, headers: Mapping[str, str], trust_proxy_headers: bool) -> bool:
    """Whether the browser's side of the connection is https: the scheme hookyard sees, or
    the first `X-Forwarded-Proto` of a proxy the operator trusts."""
    if scheme in ("https", "wss"):
        return True
    if trust_proxy_headers:
        forwarded = headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
        return forwarded in ("https", "wss")
    return False
