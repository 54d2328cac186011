"""Webhook targets (issue 12): refused when loopback, private, link-local or multicast, by name or literal; a
redirect never followed; each attempt timed out; the vetted DNS answer is the one connected to, with the URL's
host name in the Host header. Real sockets: local servers on 127.0.0.1, allowed only through the test override."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from aggregator.scheduler import Alert, WebhookSender
from aggregator.webhook_target import WebhookTargetRefused, is_public_address, vet_url, webhook_session

ALERT = Alert("treasury-1", "liquidatable", None, 1.2, "liquidatable", 100.0, 80.0, True)


def only_loopback(address: Any) -> bool:
    return bool(address.is_loopback)


class Recorded:
    def __init__(self) -> None:
        self.hosts: list[str] = []
        self.sleeps: list[float] = []
        self.release = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


async def local_server(handler: Any) -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1]


@pytest.fixture
async def target() -> AsyncIterator[tuple[Recorded, int]]:
    """A webhook on 127.0.0.1 that records the Host header of every request it gets; /redirect answers 302."""
    recorded = Recorded()

    async def handle(request: web.Request) -> web.StreamResponse:
        recorded.hosts.append(request.host)
        if request.path == "/redirect":
            raise web.HTTPFound(f"http://127.0.0.1:{request.url.port}/followed")
        if request.path == "/stall":
            await recorded.release.wait()
        return web.Response(status=204)

    runner, port = await local_server(handle)
    yield recorded, port
    recorded.release.set()
    await runner.cleanup()


class FixedAnswers(AbstractResolver):
    """DNS as the test writes it: each lookup takes the next answer, so a second lookup would differ."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.lookups = 0

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = self.answers[min(self.lookups, len(self.answers) - 1)]
        self.lookups += 1
        return [
            ResolveResult(hostname=host, host=a, port=port, family=socket.AF_INET, proto=0, flags=socket.AI_NUMERICHOST)
            for a in addresses
        ]

    async def close(self) -> None:
        return None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://169.254.169.254/latest/meta-data/",  # the cloud metadata endpoint
        "http://10.0.0.7/hook",
        "http://192.168.1.1/hook",
        "http://100.64.0.1/hook",  # shared address space (carrier NAT)
        "http://224.0.0.1/hook",
        "http://0.0.0.0:8080/hook",
        "http://[::1]:8080/hook",
        "http://[fd00::1]/hook",
        "http://[fe80::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",  # loopback dressed as IPv6
        "ftp://example.com/hook",
    ],
)
def test_literal_targets_that_are_not_public_are_refused(url: str) -> None:
    with pytest.raises(WebhookTargetRefused):
        vet_url(url)


def test_public_addresses_pass() -> None:
    vet_url("https://8.8.8.8/hook")
    vet_url("https://[2606:4700::1111]/hook")
    vet_url("https://hooks.example.com/hook")  # a name: vetted when it is resolved
    assert not is_public_address(ipaddress.ip_address("239.255.255.250"))


async def test_a_local_server_is_refused_and_never_reached(target: tuple[Recorded, int]) -> None:
    recorded, port = target
    async with webhook_session() as session:
        sender = WebhookSender(session, sleep=recorded.sleep)
        assert await sender.send(f"http://127.0.0.1:{port}/hook", ALERT) is False
        assert await sender.send(f"http://localhost:{port}/hook", ALERT) is False  # a name resolving to it
    assert recorded.hosts == []
    assert recorded.sleeps == []  # refused, not retried


async def test_an_answer_mixing_public_and_private_addresses_is_refused(target: tuple[Recorded, int]) -> None:
    recorded, port = target
    answers = FixedAnswers(["93.184.215.14", "127.0.0.1"])
    async with webhook_session(resolver=answers) as session:
        assert await WebhookSender(session, sleep=recorded.sleep).send(f"http://hook.test:{port}/", ALERT) is False
    assert recorded.hosts == []


async def test_the_vetted_answer_is_the_one_connected_to_with_the_original_host(target: tuple[Recorded, int]) -> None:
    """DNS rebinding: the first answer passes the check; a second lookup would answer the metadata address. One
    lookup per connection, connected to what was vetted, and the Host header still names the URL's host."""
    recorded, port = target
    answers = FixedAnswers(["127.0.0.1"], ["169.254.169.254"])
    async with webhook_session(allowed=only_loopback, resolver=answers) as session:
        sender = WebhookSender(session, sleep=recorded.sleep, allowed=only_loopback)
        assert await sender.send(f"http://hook.test:{port}/hook", ALERT) is True
    assert answers.lookups == 1
    assert recorded.hosts == [f"hook.test:{port}"]


async def test_a_redirect_is_not_followed(target: tuple[Recorded, int]) -> None:
    recorded, port = target
    async with webhook_session(allowed=only_loopback) as session:
        sender = WebhookSender(session, sleep=recorded.sleep, allowed=only_loopback)
        assert await sender.send(f"http://127.0.0.1:{port}/redirect", ALERT) is False
    assert recorded.hosts == [f"127.0.0.1:{port}"]  # /followed was never asked for
    assert recorded.sleeps == []  # a 3xx is an answer: not retried


async def test_each_attempt_has_its_own_timeout(target: tuple[Recorded, int]) -> None:
    recorded, port = target
    async with webhook_session(allowed=only_loopback) as session:
        sender = WebhookSender(session, sleep=recorded.sleep, allowed=only_loopback, attempts=2, timeout_s=0.2)
        assert await sender.send(f"http://127.0.0.1:{port}/stall", ALERT) is False
    assert len(recorded.hosts) == 2 and recorded.sleeps == [sender.backoff_s]
