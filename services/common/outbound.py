"""Where a service may send requests that users chose (webhooks): public addresses only, unless allowed.

A webhook URL comes from whoever holds the admin key, but the request leaves from inside the
deployment, next to the database and the model servers. Refusing loopback, private, link-local
(cloud metadata at 169.254.169.254), shared and reserved addresses keeps a subscription from
turning the monitor into a proxy into that network (server-side request forgery).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


class ForbiddenTarget(ValueError):
    """The URL points, or resolves, to an address this deployment does not send to."""


def _forbidden(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast


def _addresses(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]


def check_target(url: str, *, allow_private: bool = False, resolve: bool = True) -> None:
    """Raise ``ForbiddenTarget`` unless every address of the URL's host is public.

    ``resolve=False`` checks only what the URL itself says (a literal address or ``localhost``): for
    the moment a subscription is made, when the target's DNS may not be reachable from here yet. A
    host that does not resolve raises ``OSError`` (the caller decides whether that is retryable).
    """
    if allow_private:
        return
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise ForbiddenTarget("the URL has no host")
    if host == "localhost" or host.endswith(".localhost"):
        raise ForbiddenTarget(f"{host} is this machine; webhooks go to public addresses only")
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        if _forbidden(literal):
            raise ForbiddenTarget(f"{host} is not a public address; webhooks go to public addresses only")
        return
    if not resolve:
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    for address in _addresses(host, port):
        if _forbidden(address):
            raise ForbiddenTarget(f"{host} resolves to {address}, not a public address; webhooks go to public addresses only")
