"""One HTTP attempt: resolve the host, refuse forbidden addresses, POST with bounded time.

The connection goes to the address that was checked (the URL's host stays in the Host
header and TLS server name), so a name that re-resolves to an internal address between
the check and the request (DNS rebinding) cannot redirect a delivery.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from loyalist.webhooks import domain


class TargetRefused(Exception):
    """The URL cannot be delivered to (scheme, unresolvable, forbidden address)."""


@dataclass(frozen=True)
class Answer:
    status_code: int | None
    body: str | None
    retry_after: str | None
    error: str | None
    duration_ms: int


def resolve(url: str, *, allow_private: bool) -> str:
    """The address to connect to for ``url``; raises :class:`TargetRefused`.

    Every address the name resolves to must be allowed (one forbidden address refuses the
    URL), unless ``allow_private``.
    """
    problem = domain.url_problem(url)
    if problem:
        raise TargetRefused(problem)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise TargetRefused(f"the host {host!r} does not resolve") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise TargetRefused(f"the host {host!r} does not resolve")
    if not allow_private:
        bad = [a for a in addresses if domain.forbidden_address(a)]
        if bad:
            raise TargetRefused(
                f"the host {host!r} resolves to a private or reserved address ({bad[0]})"
            )
    return addresses[0]


def post(
    url: str,
    headers: dict[str, str],
    body: bytes,
    *,
    allow_private: bool,
    connect_timeout_s: float,
    timeout_s: float,
) -> Answer:
    """POST ``body``; never raises for network trouble (it is reported in the answer)."""
    started = time.monotonic()

    import httpx  # imported when first used: its CLI pulls in rich and pygments (memory)

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        address = resolve(url, allow_private=allow_private)
    except TargetRefused as exc:
        return Answer(None, None, None, f"refused: {exc}", took())
    target = httpx.URL(url)
    pinned = target.copy_with(host=address)
    sent_headers = dict(headers)
    sent_headers["host"] = target.netloc.decode("ascii")
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    deadline = started + timeout_s
    timeout = httpx.Timeout(timeout_s, connect=min(connect_timeout_s, timeout_s))
    try:
        with (
            httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client,
            client.stream(
                "POST", pinned, headers=sent_headers, content=body, extensions=extensions
            ) as resp,
        ):
            chunks: list[bytes] = []
            size = 0
            for chunk in resp.iter_bytes():
                if size < domain.RESPONSE_KEEP * 4:
                    chunks.append(chunk)
                    size += len(chunk)
                if time.monotonic() > deadline:
                    break
            text = b"".join(chunks).decode("utf-8", errors="replace")
            return Answer(
                resp.status_code,
                domain.truncate(text, domain.RESPONSE_KEEP),
                resp.headers.get("retry-after"),
                None,
                took(),
            )
    except httpx.TimeoutException as exc:
        return Answer(None, None, None, f"timeout: {type(exc).__name__}", took())
    except httpx.HTTPError as exc:
        return Answer(None, None, None, f"{type(exc).__name__}: {exc}", took())
