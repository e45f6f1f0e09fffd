"""The outbound-target guard for webhooks (no network: names resolve through a patched resolver)."""

from __future__ import annotations

import socket

import pytest

from services.common import outbound
from services.common.outbound import ForbiddenTarget, check_target


def _resolving_to(address: str):
    def fake(host: str, port: int, type: int = 0):
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port))]

    return fake


def test_public_literal_addresses_pass_and_private_ones_do_not() -> None:
    check_target("https://93.184.216.34/hook")
    check_target("https://[2606:2800:220:1:248:1893:25c8:1946]/hook")
    for url in ("http://192.168.1.5/x", "http://100.64.0.1/x", "http://224.0.0.1/x", "http://[fe80::1]/x", "http://LOCALHOST./x"):
        with pytest.raises(ForbiddenTarget):
            check_target(url)
    check_target("http://127.0.0.1:9/x", allow_private=True)


def test_a_name_is_judged_by_what_it_resolves_to(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbound.socket, "getaddrinfo", _resolving_to("10.0.0.7"))
    with pytest.raises(ForbiddenTarget, match="resolves to 10.0.0.7"):
        check_target("https://hooks.example.com/T0/secret")
    check_target("https://hooks.example.com/T0/secret", resolve=False)  # at subscription time, before DNS is asked

    monkeypatch.setattr(outbound.socket, "getaddrinfo", _resolving_to("203.0.113.9"))  # documentation range: not global
    with pytest.raises(ForbiddenTarget):
        check_target("https://hooks.example.com/T0/secret")
    monkeypatch.setattr(outbound.socket, "getaddrinfo", _resolving_to("52.1.2.3"))
    check_target("https://hooks.example.com/T0/secret")


def test_an_unresolvable_name_is_an_os_error_not_a_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(outbound.socket, "getaddrinfo", fail)
    with pytest.raises(OSError):
        check_target("https://hooks.example.com/T0/secret")
