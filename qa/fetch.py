"""Fetching one web page, safely, for an article added by its address.

Every hop is checked before anything is sent to it::

    address ─> http or https? ─> host resolved; is every address it has public?
       ▲                                  │ yes: GET from that address (the Host header and the
       │                                  │ TLS name stay the host's, so nothing resolves it again)
       └─ a redirect (at most 5), ◄───────┤
          checked again from the start    ▼ 200
                         an HTML content type? ─> Content-Length within the limit?
                         ─> the body, counted as it is decompressed, within the limit

A host that resolves to a private, loopback, link-local, reserved, multicast or
unspecified address (any of them, when it has several) is refused, so a link
cannot reach this machine or its network, such as a router's page or a cloud
metadata service. ``QA_ALLOW_PRIVATE_LINKS=1`` lifts that for a page served on
the local network. Redirects are followed here, by hand, so that each target is
checked like the first address. The whole fetch has one deadline, so a server
that trickles bytes cannot hold it for long, and the size limit counts the
decompressed bytes, so a small compressed bomb is cut off too (httpx decodes one
network read at a time: what one read can unfold to is all that is held beyond
the limit). Proxy settings from the environment are not used: the address that
was checked is the one connected to.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone

import httpx

from .errors import LinkError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
AddressPolicy = Callable[[IPAddress], bool]  # may a page be fetched from this address?
MAX_PAGE_BYTES = 10 * 1024 * 1024
MAX_REDIRECTS = 5
TIMEOUT_S = 20.0
HTML_TYPES = ("text/html", "application/xhtml+xml")
HEADERS = {"User-Agent": "Mozilla/5.0 (compatible; qa-articles; reads one article for a local index)",
           "Accept": "text/html,application/xhtml+xml;q=0.9"}
_MB = 1024 * 1024


@dataclass(frozen=True)
class Page:
    """A fetched web page."""

    url: str  # the address asked for
    final_url: str  # where the page was found, after redirects
    content: bytes  # the body, decompressed, in its own character set
    content_type: str  # "text/html" or "application/xhtml+xml"
    charset: str  # from the Content-Type header; "" when it names none
    fetched: str  # when, ISO 8601 in UTC


def is_public(address: IPAddress) -> bool:
    """May a page be fetched from this address? Not when it is private, loopback, link-local, reserved,
    multicast or unspecified (an IPv4 address written as IPv6 is judged as IPv4).

    >>> from ipaddress import ip_address
    >>> [is_public(ip_address(a)) for a in ("93.184.215.14", "2606:4700::1111")]
    [True, True]
    >>> [is_public(ip_address(a)) for a in ("10.1.2.3", "127.0.0.1", "169.254.169.254", "0.0.0.0",
    ...                                     "224.0.0.1", "100.64.0.1", "::1", "fe80::1", "::ffff:192.168.1.1")]
    [False, False, False, False, False, False, False, False, False]
    """
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not (address.is_private or address.is_loopback or address.is_link_local
                                      or address.is_reserved or address.is_multicast or address.is_unspecified)


def any_address(address: IPAddress) -> bool:
    """The policy of ``QA_ALLOW_PRIVATE_LINKS=1``: every address may be fetched."""
    return True


def address_policy(allow_private: bool) -> AddressPolicy:
    """The address policy for the setting ``allow_private_links``."""
    return any_address if allow_private else is_public


def web_url(url: str) -> httpx.URL:
    """``url`` parsed, or :class:`LinkError` unless it is an absolute http or https address.

    >>> str(web_url(" https://news.example/a b "))
    'https://news.example/a%20b'
    >>> web_url("file:///etc/passwd")
    Traceback (most recent call last):
    ...
    qa.errors.LinkError: Only http and https links can be added, not file:///etc/passwd.
    """
    text = url.strip()
    try:
        parsed = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise LinkError(f"{text!r} is not a web address ({exc}).") from exc
    if parsed.scheme not in ("http", "https"):
        raise LinkError(f"Only http and https links can be added, not {text}.")
    if not parsed.host:
        raise LinkError(f"{text!r} names no host; a link looks like https://news.example/story.")
    return parsed


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to, in the order to try them."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise LinkError(f"The host {host} could not be found; check the address.") from exc
    found: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


def checked_addresses(url: httpx.URL, allowed: AddressPolicy) -> list[IPAddress]:
    """The addresses of ``url``'s host, or :class:`LinkError` when any of them is not allowed."""
    addresses = resolve(url.raw_host.decode("ascii"), url.port or (443 if url.scheme == "https" else 80))
    for address in addresses:
        if not allowed(address):
            raise LinkError(f"{url} leads to {url.host} ({address}), a private or local address: links into this "
                            "machine or its network are refused (set QA_ALLOW_PRIVATE_LINKS=1 to allow them).")
    if not addresses:
        raise LinkError(f"The host {url.host} could not be found; check the address.")
    return addresses


def _redirect_target(current: httpx.URL, location: str) -> httpx.URL:
    """Where a redirect leads: ``location``, read against the address that answered with it.

    >>> str(_redirect_target(httpx.URL("https://news.example/a/b?x=1"), "../c"))
    'https://news.example/c'
    """
    try:
        target = httpx.URL(location.strip())
    except httpx.InvalidURL as exc:
        raise LinkError(f"{current} redirects to {location!r}, which is not a web address.") from exc
    return web_url(location if target.scheme else str(current.join(target)))


@contextmanager
def _get(client: httpx.Client, url: httpx.URL, addresses: list[IPAddress],
         deadline: float) -> Iterator[httpx.Response]:
    """GET ``url`` from the first of its checked addresses that accepts a connection, by ``deadline``."""
    failure: httpx.ConnectError | None = None
    for address in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise httpx.ConnectTimeout("no time left for another address or redirect")
        request = client.build_request("GET", url.copy_with(host=str(address)),
                                       headers={"Host": url.netloc.decode("ascii")},
                                       timeout=httpx.Timeout(min(remaining, 10.0)),
                                       extensions={"sni_hostname": url.raw_host.decode("ascii")})
        try:
            response = client.send(request, stream=True)
        except httpx.ConnectError as exc:
            failure = exc
            continue
        try:
            yield response
        finally:
            response.close()
        return
    assert failure is not None
    raise failure


def _body(response: httpx.Response, url: str, max_bytes: int, deadline: float) -> bytes:
    """The decompressed body, or :class:`LinkError` when it is larger than ``max_bytes`` or too slow."""
    limit = f"{url} is larger than {max_bytes / _MB:g} MB, the limit for one page."
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise LinkError(limit)
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise LinkError(limit)
        if time.monotonic() > deadline:
            raise httpx.ReadTimeout("the whole page took too long", request=response.request)
        chunks.append(chunk)
    return b"".join(chunks)


def fetch_page(url: str, *, allowed: AddressPolicy = is_public, timeout: float = TIMEOUT_S,
               max_bytes: int = MAX_PAGE_BYTES, max_redirects: int = MAX_REDIRECTS) -> Page:
    """Fetch the HTML page at ``url``, or raise :class:`LinkError` with a one-line reason.

    ``allowed`` decides which addresses may be fetched, at every hop (default: public ones only).
    """
    asked = url.strip()
    current = web_url(asked)
    deadline = time.monotonic() + timeout
    try:
        with httpx.Client(follow_redirects=False, trust_env=False, headers=HEADERS) as client:
            for _ in range(max_redirects + 1):
                with _get(client, current, checked_addresses(current, allowed), deadline) as response:
                    if response.is_redirect:
                        current = _redirect_target(current, response.headers["location"])
                        continue
                    if response.status_code >= 400:
                        raise LinkError(f"{current} answered {response.status_code} {response.reason_phrase}: "
                                        "there is no page to read there.")
                    if response.status_code != 200:
                        raise LinkError(f"{current} answered {response.status_code} {response.reason_phrase} "
                                        "instead of a page.")
                    media = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
                    if media not in HTML_TYPES:
                        kind = f"it is {media}" if media else "its server does not say what it is"
                        raise LinkError(f"{current} is not a web page ({kind}). Add the address of an article's "
                                        "page.")
                    content = _body(response, str(current), max_bytes, deadline)
                    return Page(url=asked, final_url=str(current), content=content, content_type=media,
                                charset=response.charset_encoding or "",
                                fetched=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    except httpx.TimeoutException as exc:
        raise LinkError(f"{current} did not answer within {timeout:g} s; try again later.") from exc
    except httpx.HTTPError as exc:
        raise LinkError(f"{current} could not be fetched ({exc or type(exc).__name__}).") from exc
    raise LinkError(f"{asked} redirects more than {max_redirects} times; add the address it finally leads to.")
