"""Articles added by their web address: what they are called, how they are read, where they are kept.

A page fetched by :mod:`qa.fetch` is read by the same HTML reader as an ``.html``
file (:func:`qa.articles.parse_article`: trafilatura, the page's own title,
site, author and date); a page whose main text is shorter than
``MIN_TEXT_CHARS`` is not taken for an article. A page that names no site gets
its host as outlet.

An article's id is its canonical address: the page's ``<link rel="canonical">``,
else its ``og:url``, else the address it was found at after redirects; scheme
and host in lower case, default port, credentials and fragment dropped. So the
same story reached by another address (a tracking parameter, a redirect, a
mobile host) is the same article, and adding it again changes nothing. A
canonical address on another site is not believed: a page cannot take the
place of another site's article.

Each page is kept in ``<data dir>/links/`` as it came (``<key>.html``, the
bytes) beside a record of its address, where it was found and when
(``<key>.json``), ``<key>`` a hash of the address. Those files, not the
network, are what a folder ingest (and ``qa ingest --rebuild``) reads the
linked articles from again.
"""

from __future__ import annotations

import codecs
import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit, urlunsplit

from .articles import Article, Skipped, parse_article
from .errors import LinkError
from .fetch import Page

MIN_TEXT_CHARS = 250  # less main text than this is a page about something else, not an article
LINK_PREFIXES = ("http://", "https://")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def is_link(article_id: str) -> bool:
    """Is this the id of an article added by its address?

    >>> is_link("https://news.example/story"), is_link("uploads/story.md"), is_link("2024/story.txt")
    (True, False, False)
    """
    return article_id.startswith(LINK_PREFIXES)


def looks_like_url(text: str) -> bool:
    """Is ``text`` written as a web address (any scheme), rather than a folder?

    >>> looks_like_url("https://news.example/a"), looks_like_url("ftp://x/y"), looks_like_url("articles/2024")
    (True, True, False)
    """
    return bool(re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", text.strip()))


def normalise_url(url: str) -> str:
    """The address in one spelling: scheme and host in lower case, no default port, credentials or fragment.

    >>> normalise_url("HTTPS://reader@news.EXAMPLE:443/Town/ferry?id=7#comments")
    'https://news.example/Town/ferry?id=7'
    >>> normalise_url("http://[::1]:8080")
    'http://[::1]:8080/'
    """
    parts = urlsplit(url.strip())
    scheme, host, port = parts.scheme.lower(), (parts.hostname or "").lower(), parts.port
    host = f"[{host}]" if ":" in host else host
    netloc = host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def _site(host: str) -> str:
    return host.lower().removeprefix("www.")


def same_site(a: str, b: str) -> bool:
    """Are two addresses on one site (the same host, ``www.`` aside, or one a subdomain of the other)?

    >>> same_site("https://m.news.example/a", "https://www.news.example/a")
    True
    >>> same_site("https://news.example/a", "https://other.example/a")
    False
    """
    x, y = _site(urlsplit(a).hostname or ""), _site(urlsplit(b).hostname or "")
    return bool(x and y) and (x == y or x.endswith("." + y) or y.endswith("." + x))


def declared_urls(html_text: str) -> list[str]:
    """The addresses a page gives for itself: ``<link rel="canonical">`` first, then ``og:url``."""
    from lxml import etree
    from lxml import html as lxml_html

    try:
        root = lxml_html.document_fromstring(html_text.lstrip("\ufeff").encode(),
                                             parser=lxml_html.HTMLParser(encoding="utf-8"))
    except (etree.ParserError, ValueError):
        return []
    found = [str(link.get("href") or "").strip() for link in root.iter("link")
             if "canonical" in str(link.get("rel") or "").lower().split()]
    found += [str(meta.get("content") or "").strip() for meta in root.iter("meta")
              if str(meta.get("property") or meta.get("name") or "").lower() == "og:url"]
    return [url for url in found if url]


def canonical_url(html_text: str, final_url: str) -> str:
    """The article's id: the page's canonical address on the same site, else the address it was found at.

    >>> page = '<link rel="canonical" href="/town/ferry-back"><p>Text</p>'
    >>> canonical_url(page, "https://www.news.example/town/ferry-back?utm_source=feed")
    'https://www.news.example/town/ferry-back'
    >>> canonical_url('<link rel="canonical" href="https://elsewhere.example/x">', "https://news.example/a#top")
    'https://news.example/a'
    """
    for declared in declared_urls(html_text):
        try:
            url = normalise_url(urljoin(final_url, declared))
        except ValueError:  # a port that is no number, a malformed IPv6 host
            continue
        if is_link(url) and same_site(url, final_url):
            return url
    return normalise_url(final_url)


def decode_page(content: bytes, charset: str = "") -> str:
    """A page's text: by its byte order mark, the header's charset, its own ``<meta charset>``, else UTF-8
    (Windows-1252 when it is not UTF-8).

    >>> decode_page('<meta charset="iso-8859-1"><p>Café</p>'.encode("latin-1"))
    '<meta charset="iso-8859-1"><p>Café</p>'
    """
    if content.startswith(codecs.BOM_UTF8):
        return content.decode("utf-8-sig", errors="replace")
    if content.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return content.decode("utf-16", errors="replace")
    declared = re.search(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", content[:4096], re.I)
    for name in (charset, declared.group(1).decode("ascii") if declared else ""):
        if name:
            try:
                return content.decode(name, errors="replace")
            except LookupError:  # a charset Python does not know
                pass
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        return content.decode("cp1252", errors="replace")


def page_article(url: str, html_text: str) -> Article:
    """The article of a page whose id is ``url``, or :class:`LinkError` when the page holds none."""
    article = parse_article(html_text, url, ".html")
    size = len(article.text.strip())
    if size < MIN_TEXT_CHARS:
        found = "no main text was found on it" if not size else f"its main text is only {size} characters long"
        raise LinkError(f"{url} does not look like an article: {found}. Add the address of an article's page.")
    if not article.outlet:
        article = dataclasses.replace(article, outlet=_site(urlsplit(url).hostname or ""))
    return article


def read_page(page: Page) -> Article:
    """The article of a fetched page, named by its canonical address."""
    text = decode_page(page.content, page.charset)
    return page_article(canonical_url(text, page.final_url), text)


# --- the copies in <data dir>/links ---------------------------------------------------------

def links_dir(data_dir: Path) -> Path:
    return data_dir / "links"


def page_key(url: str) -> str:
    """The file name (without suffix) of a linked page's copy.

    >>> page_key("https://news.example/town/ferry-back")
    'e546d0a7e71120caaf28c830704379f7'
    """
    return hashlib.sha256(url.encode()).hexdigest()[:32]


@dataclass
class StagedPage:
    """A page's copy written beside its place; :meth:`commit` puts it there, :meth:`discard` drops it."""

    files: list[tuple[Path, Path]]  # (written, final place)

    def commit(self) -> None:
        for written, final in self.files:
            os.replace(written, final)

    def discard(self) -> None:
        for written, _ in self.files:
            written.unlink(missing_ok=True)


def stage_page(folder: Path, article_id: str, page: Page) -> StagedPage:
    """Write the copy of ``page`` (its bytes and its record) under temporary names in ``folder``."""
    key = page_key(article_id)
    record = {"url": article_id, "requested": page.url, "final_url": page.final_url, "fetched": page.fetched,
              "content_type": page.content_type, "charset": page.charset}
    staged = StagedPage([(folder / f".{key}.html.partial", folder / f"{key}.html"),
                         (folder / f".{key}.json.partial", folder / f"{key}.json")])
    try:
        folder.mkdir(parents=True, exist_ok=True)
        staged.files[0][0].write_bytes(page.content)
        staged.files[1][0].write_text(json.dumps(record, ensure_ascii=False, indent=1) + "\n")
    except OSError as exc:
        staged.discard()
        raise LinkError(f"A copy of {article_id} could not be kept in {folder} ({exc.strerror or exc}).") from exc
    return staged


def remove_page(folder: Path, article_id: str) -> bool:
    """Delete the copy of a linked page; was there one?"""
    key = page_key(article_id)
    paths = [folder / f"{key}.html", folder / f"{key}.json"]
    existed = any(p.is_file() for p in paths)
    for path in paths:
        path.unlink(missing_ok=True)
    return existed


def load_linked(folder: Path) -> tuple[list[Article], list[Skipped]]:
    """The articles of every page kept in ``folder``, and the copies that cannot be read, with why."""
    articles: list[Article] = []
    skipped: list[Skipped] = []
    if not folder.is_dir():
        return articles, skipped
    for record_path in sorted(folder.glob("[!.]*.json")):
        name = f"{folder.name}/{record_path.name}"
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
            url = str(record["url"])
            charset = str(record.get("charset") or "")
            content = record_path.with_suffix(".html").read_bytes()
        except (OSError, ValueError, KeyError, TypeError) as exc:
            skipped.append(Skipped(name, f"an unreadable copy of a linked page ({exc})"))
            continue
        if not is_link(url):
            skipped.append(Skipped(name, f"a copy of a linked page with no web address ({url!r})"))
            continue
        try:
            articles.append(page_article(url, decode_page(content, charset)))
        except LinkError as exc:
            skipped.append(Skipped(url, str(exc)))
    return articles, skipped
