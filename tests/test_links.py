"""Articles added by their web address: fetching safely, reading, keeping, and the ``qa ingest URL`` command.

Pages are served by ``http.server`` on loopback addresses in a thread. The fetching tests call
:func:`qa.fetch.fetch_page` for real (real sockets, real httpx); the index tests use real Chroma,
with the fake embedder for the fast ones and the real one through the ``qa`` command for the slow one.
"""

from __future__ import annotations

import gzip
import ipaddress
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from qa.errors import LinkError
from qa.fetch import MAX_PAGE_BYTES, any_address, fetch_page, is_public
from qa.ingest import ingest, ingest_link
from qa.library import Library
from qa.links import canonical_url, links_dir, load_linked
from qa.store import ChromaStore

from .fakes import FakeEmbedder

ROOT = Path(__file__).resolve().parent.parent

STORY = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Ferry line returns after winter repairs | Harbour Gazette</title>
<link rel="canonical" href="/town/ferry-line-returns">
<meta property="og:title" content="Ferry line returns after winter repairs">
<meta property="og:site_name" content="Harbour Gazette">
<meta name="author" content="Jane Doe">
<meta property="article:published_time" content="2024-03-14T08:00:00Z">
</head><body>
<nav><a href="/">Home</a> <a href="/town">Town</a> <a href="/sport">Sport</a></nav>
<div class="cookie-banner">We use cookies. Accept cookies</div>
<article>
<h1>Ferry line returns after winter repairs</h1>
<p class="byline">By Jane Doe, 14 March 2024</p>
<p>The ferry between Gullhaven and the Tern Islands will run again from Monday, after three months of
repairs to its landing stage, the harbour board said on Thursday.</p>
<p>Engineers replaced 42 timber piles that storms had loosened in November, and rebuilt the ramp that
cars use to board. The work cost 1.8 million crowns, a fifth more than planned.</p>
<p>The first crossing leaves Gullhaven at 6.40 in the morning. Islanders who drove round the bay while
the line was closed, a journey of two hours, said they were relieved.</p>
<p>The board expects 300 passengers a day in spring and twice as many in summer.</p>
</article>
<aside>Related stories: Harbour dredging to start in May</aside>
<footer>© 2024 Harbour Gazette. All rights reserved.</footer>
</body></html>
"""
CANONICAL_PATH = "/town/ferry-line-returns"
NOT_AN_ARTICLE = """<!doctype html><html><head><title>Harbour Gazette</title></head><body>
<nav><a href="/">Home</a> <a href="/town">Town</a></nav><p>Sign in to read on.</p></body></html>"""


@dataclass
class Route:
    body: bytes
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "text/html; charset=utf-8"})
    delay: float = 0.0


class Site:
    """A web site on a loopback address, run by http.server in a thread; records the paths asked for."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict[str, Route] = {}
        self.hits: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                site.hits.append(self.path)
                route = site.routes.get(urlsplit(self.path).path) or Route(b"not here", 404)
                time.sleep(route.delay)
                self.send_response(route.status)
                for key, value in route.headers.items():
                    self.send_header(key, value)
                if "Content-Length" not in route.headers:
                    self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                try:
                    self.wfile.write(route.body)
                except OSError:  # the client stopped reading: what a refusal does
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def page(self, path: str, html: str, **kw: object) -> str:
        self.routes[path] = Route(html.encode(), **kw)  # type: ignore[arg-type]
        return self.url + path

    def redirect(self, path: str, to: str, status: int = 302) -> str:
        self.routes[path] = Route(b"", status, {"Location": to})
        return self.url + path

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def site() -> Iterator[Site]:
    s = Site()
    yield s
    s.close()


def loopback_as_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """The real policy, except that 127.0.0.1 stands for a public server."""
    return address == ipaddress.ip_address("127.0.0.1") or is_public(address)


# --- fetching -------------------------------------------------------------------------------------

def test_a_page_is_fetched_with_its_final_address_and_charset(site: Site) -> None:
    url = site.page("/story", STORY)
    moved = site.redirect("/old", "/story", status=301)
    page = fetch_page(moved, allowed=any_address)
    assert page.url == moved and page.final_url == url and page.content == STORY.encode()
    assert page.content_type == "text/html" and page.charset == "utf-8" and page.fetched.endswith("+00:00")


def test_a_loopback_link_is_refused_without_the_setting(site: Site) -> None:
    url = site.page("/story", STORY)
    with pytest.raises(LinkError, match=r"127\.0\.0\.1.*private or local address.*QA_ALLOW_PRIVATE_LINKS=1"):
        fetch_page(url)
    with pytest.raises(LinkError, match="private or local"):
        fetch_page(url.replace("127.0.0.1", "localhost"))
    assert site.hits == [], "nothing was sent to it"


def test_a_redirect_to_a_private_address_is_refused_before_it_is_followed(site: Site) -> None:
    inside = Site("127.0.0.2")  # reachable, and private: the redirect must not reach it
    try:
        secret = inside.page("/admin", STORY)
        assert fetch_page(secret, allowed=any_address).content == STORY.encode()
        inside.hits.clear()
        url = site.redirect("/go", secret)
        with pytest.raises(LinkError, match=r"127\.0\.0\.2.*private or local address"):
            fetch_page(url, allowed=loopback_as_public)
        assert site.hits == ["/go"] and inside.hits == []
        metadata = site.redirect("/cloud", "http://169.254.169.254/latest/meta-data/")
        with pytest.raises(LinkError, match=r"169\.254\.169\.254.*private or local"):
            fetch_page(metadata, allowed=loopback_as_public)
        assert fetch_page(site.page("/story", STORY), allowed=loopback_as_public).content, "the first hop is allowed"
    finally:
        inside.close()


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/story.html", "gopher://x/1",
                                 "javascript:alert(1)", "news.example/story"])
def test_only_http_and_https_addresses_are_fetched(url: str) -> None:
    with pytest.raises(LinkError, match="Only http and https|not a web address|names no host"):
        fetch_page(url, allowed=any_address)


def test_a_redirect_to_another_scheme_is_refused(site: Site) -> None:
    with pytest.raises(LinkError, match=r"Only http and https links can be added, not file:///etc/passwd"):
        fetch_page(site.redirect("/x", "file:///etc/passwd"), allowed=any_address)


def test_a_gzip_bomb_is_cut_off_at_the_size_limit(site: Site) -> None:
    bomb = gzip.compress(b"<html><body><p>" + b" " * (MAX_PAGE_BYTES + 1024))
    assert len(bomb) < 100_000, "small compressed"
    site.routes["/bomb"] = Route(bomb, headers={"Content-Type": "text/html", "Content-Encoding": "gzip"})
    with pytest.raises(LinkError, match="larger than 10 MB, the limit for one page"):
        fetch_page(site.url + "/bomb", allowed=any_address)


def test_a_declared_length_over_the_limit_is_refused_before_reading(site: Site) -> None:
    site.routes["/huge"] = Route(b"<p>short</p>", headers={"Content-Type": "text/html",
                                                           "Content-Length": str(MAX_PAGE_BYTES + 1)})
    with pytest.raises(LinkError, match="larger than 10 MB"):
        fetch_page(site.url + "/huge", allowed=any_address)


def test_a_page_just_under_the_limit_is_read(site: Site) -> None:
    body = gzip.compress(b"<p>" + b"a" * 5000)
    site.routes["/ok"] = Route(body, headers={"Content-Type": "text/html", "Content-Encoding": "gzip"})
    assert len(fetch_page(site.url + "/ok", allowed=any_address, max_bytes=5003).content) == 5003
    with pytest.raises(LinkError, match="larger than"):
        fetch_page(site.url + "/ok", allowed=any_address, max_bytes=5002)


@pytest.mark.parametrize(("route", "message"), [
    (Route(b"%PDF-1.7", headers={"Content-Type": "application/pdf"}), r"not a web page \(it is application/pdf\)"),
    (Route(b"{}", headers={"Content-Type": "application/json"}), "not a web page"),
    (Route(b"<p>x</p>", headers={}), "its server does not say what it is"),
    (Route(b"gone", 404), "answered 404 Not Found"),
    (Route(b"oops", 500), "answered 500 Internal Server Error"),
    (Route(b"", 204), "answered 204 No Content instead of a page"),
])
def test_what_is_not_a_page_gets_one_line(site: Site, route: Route, message: str) -> None:
    site.routes["/x"] = route
    with pytest.raises(LinkError, match=message) as caught:
        fetch_page(site.url + "/x", allowed=any_address)
    assert "\n" not in str(caught.value)


def test_a_redirect_loop_and_a_slow_server_are_given_up(site: Site) -> None:
    site.redirect("/a", "/b")
    site.redirect("/b", "/a")
    with pytest.raises(LinkError, match="redirects more than 5 times"):
        fetch_page(site.url + "/a", allowed=any_address)
    assert len(site.hits) == 6
    site.routes["/slow"] = Route(b"<p>late</p>", delay=3.0)
    with pytest.raises(LinkError, match="did not answer within 1 s"):
        fetch_page(site.url + "/slow", allowed=any_address, timeout=1.0)


def test_an_unknown_host_is_one_line() -> None:
    with pytest.raises(LinkError, match="could not be found; check the address"):
        fetch_page("http://no-such-host.invalid/story", allowed=any_address)


# --- identity -------------------------------------------------------------------------------------

def test_the_canonical_address_names_the_article_on_its_own_site_only() -> None:
    found = "https://www.news.example/town/ferry?utm_source=feed#top"
    assert canonical_url('<meta property="og:url" content="https://m.news.example/town/ferry">', found) == \
        "https://m.news.example/town/ferry"
    assert canonical_url('<link rel="canonical" href="https://other.example/x">', found) == \
        "https://www.news.example/town/ferry?utm_source=feed"
    assert canonical_url('<link rel="Canonical" href="//www.news.example:443/town/ferry">', found) == \
        "https://www.news.example/town/ferry"
    assert canonical_url("<p>no head</p>", "HTTP://News.Example") == "http://news.example/"


# --- into the index (real Chroma, fake embedder) ----------------------------------------------------

@pytest.fixture()
def library(tmp_path: Path) -> Library:
    embedder = FakeEmbedder()
    data = tmp_path / "data"
    return Library(ChromaStore(data / "chroma", embedder_name=embedder.name), embedder, data, allowed=any_address)


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "articles"
    folder.mkdir()
    (folder / "bakery.md").write_text("---\ntitle: Bakery wins prize\n---\nThe corner bakery in Ostmoor won the "
                                      "regional bread prize for its rye loaf on Sunday.\n")
    return folder


def test_a_link_added_again_by_another_address_is_the_same_article(library: Library, site: Site) -> None:
    url = site.page(CANONICAL_PATH, STORY)
    first = library.add_link(url)
    assert first.article_id == url and first.changed and not first.replaced and first.passages >= 1
    ids = library.store.ids_by_article()
    row = next(r for r in library.articles() if r["id"] == url)
    assert (row["title"], row["outlet"], row["author"], row["date"]) == (
        "Ferry line returns after winter repairs", "Harbour Gazette", "Jane Doe", "2024-03-14")
    text = " ".join(p.text for p in library.store.all_passages())
    assert "42 timber piles" in text and "cookies" not in text and "Related stories" not in text

    site.page("/amp/ferry", STORY)
    for again in (url, site.url + "/amp/ferry?utm_source=feed", site.redirect("/old", CANONICAL_PATH)):
        result = library.add_link(again)
        assert result.article_id == url and not result.changed and result.replaced
        assert library.store.ids_by_article() == ids, "same ids, no duplicates"
    copies = sorted(p.name for p in links_dir(library.data_dir).iterdir())
    assert len(copies) == 2 and copies[0].endswith(".html") and copies[1].endswith(".json")
    record = json.loads((links_dir(library.data_dir) / copies[1]).read_text())
    assert record["url"] == url and record["final_url"] == site.url + CANONICAL_PATH


def test_a_page_that_is_not_an_article_changes_nothing(library: Library, site: Site, tmp_path: Path) -> None:
    ingest(_folder(tmp_path), library.store, library.embedder, library.data_dir)
    before = library.store.ids_by_article()
    site.routes["/pdf"] = Route(b"%PDF-1.7", headers={"Content-Type": "application/pdf"})
    for url, message in [(site.page("/home", NOT_AN_ARTICLE), "does not look like an article: its main text is only"),
                         (site.page("/empty", "<html><body></body></html>"), "no main text was found"),
                         (site.url + "/pdf", "not a web page"), (site.url + "/missing", "answered 404")]:
        with pytest.raises(LinkError, match=message):
            library.add_link(url)
    assert library.store.ids_by_article() == before
    assert not links_dir(library.data_dir).exists() or not any(links_dir(library.data_dir).iterdir())


def test_folder_ingests_and_rebuilds_keep_linked_articles_and_links_keep_the_folder(
        library: Library, site: Site, tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    ingest(folder, library.store, library.embedder, library.data_dir)
    url = library.add_link(site.page(CANONICAL_PATH, STORY)).article_id
    both = library.store.ids_by_article()
    assert set(both) == {"bakery.md", url}, "adding a link keeps the folder's articles"

    report = ingest(folder, library.store, library.embedder, library.data_dir)
    assert report.removed == 0 and report.links == 1 and library.store.ids_by_article() == both
    assert report.summary().startswith("2 articles (1 of them added by link): 0 passages added")
    site.close()  # no network from here on
    ingest(folder, library.store, library.embedder, library.data_dir, rebuild=True)
    assert library.store.ids_by_article() == both, "rebuilt from the kept copy"

    (folder / "bakery.md").unlink()
    (folder / "ferry.md").write_text("---\ntitle: Ferry notes\n---\nA short note on the ferry timetable.\n")
    ingest(folder, library.store, library.embedder, library.data_dir)
    assert set(library.store.ids_by_article()) == {"ferry.md", url}, "a file gone from the folder goes, the link stays"

    assert library.remove(url) == len(both[url])
    assert load_linked(links_dir(library.data_dir)) == ([], []), "removing a linked article removes its copy"
    ingest(folder, library.store, library.embedder, library.data_dir)
    assert set(library.store.ids_by_article()) == {"ferry.md"}


def test_a_failure_while_indexing_a_link_leaves_nothing_behind(tmp_path: Path, site: Site) -> None:
    class Failing(FakeEmbedder):
        def embed(self, texts):  # type: ignore[no-untyped-def]
            raise RuntimeError("the disk is full")

    embedder = Failing()
    data = tmp_path / "data"
    store = ChromaStore(data / "chroma", embedder_name=embedder.name)
    with pytest.raises(RuntimeError):
        ingest_link(site.page(CANONICAL_PATH, STORY), store, embedder, data, allowed=any_address)
    assert store.count() == 0 and not any(links_dir(data).iterdir())


# --- the qa command (real Chroma, real embedder) ---------------------------------------------------

def qa(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "qa", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env}, cwd=ROOT)


def test_qa_ingest_refuses_a_loopback_link_and_another_scheme_in_one_line(site: Site, tmp_path: Path) -> None:
    env = {"QA_DATA_DIR": str(tmp_path / "data")}
    url = site.page(CANONICAL_PATH, STORY)
    for target, message in [(url, "private or local address"), ("file:///etc/passwd", "Only http and https")]:
        result = qa("ingest", target, env=env)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
        assert result.stderr.strip().count("\n") == 0 and "Nothing was changed." in result.stderr
    assert site.hits == []
    mixed = qa("ingest", url, str(tmp_path), env=env)
    assert mixed.returncode == 2 and "not both" in mixed.stderr


@pytest.mark.slow
def test_qa_ingest_url_lists_the_article_and_is_idempotent(site: Site, tmp_path: Path) -> None:
    env = {"QA_DATA_DIR": str(tmp_path / "data"), "QA_ALLOW_PRIVATE_LINKS": "1"}
    url = site.page(CANONICAL_PATH, STORY)
    site.page("/amp/ferry", STORY)
    added = qa("ingest", url, env=env)
    assert added.returncode == 0, added.stderr
    assert re.fullmatch(rf"Added Ferry line returns after winter repairs \(\d+ passages\) as {url}\.\n", added.stdout)
    listed = qa("articles", env=env)
    line = (f"{url}: Ferry line returns after winter repairs — Harbour Gazette · Jane Doe · 2024-03-14 "
            r"\(\d+ passages\)")
    assert re.fullmatch(line + "\n", listed.stdout), listed.stdout

    again = qa("ingest", site.url + "/amp/ferry?utm_source=feed", site.page("/home", NOT_AN_ARTICLE), env=env)
    assert again.returncode == 2
    assert again.stdout == f"Already in the index, unchanged: Ferry line returns after winter repairs ({url}).\n"
    assert "does not look like an article" in again.stderr and again.stderr.count("\n") == 1
    assert qa("articles", env=env).stdout == listed.stdout, "nothing added twice, nothing else added"

    folder = _folder(tmp_path)
    site.close()
    rebuilt = qa("ingest", str(folder), "--rebuild", env=env)
    assert rebuilt.returncode == 0 and "2 articles (1 of them added by link)" in rebuilt.stdout, rebuilt.stderr
    after = qa("articles", env=env).stdout
    assert re.search(line, after) and "bakery.md: Bakery wins prize" in after
