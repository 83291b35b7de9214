from __future__ import annotations

from pathlib import Path

from qa.articles import Article, Skipped, load_folder, parse_article, read_article

SEEDS = Path(__file__).resolve().parent.parent / "seeds"


def test_seeds_have_real_titles_and_no_web_leftovers() -> None:
    articles, _ = load_folder(SEEDS)
    by_source = {a.source: a for a in articles}
    assert by_source["002_91029d526ce3fca8.txt"].title.startswith("Bolivian workers demonstrate power")
    assert by_source["004_b78515448f06fa10.txt"].outlet == "Counterfire"
    assert by_source["004_b78515448f06fa10.txt"].author == "John Clarke"
    for article in articles:
        for leftover in ("Subscribe to our channel", "Please give generously", "Previous", ".jpg", "Dear reader"):
            assert leftover not in article.text, (article.source, leftover)


def test_raw_web_copy_loses_leftovers_and_caption_titles() -> None:
    raw = ("Evo Morales, Photo: Joel Alvarez / licensed under CC BY-SA 3.0\n\nThe MAS won.\n\n"
           "Subscribe to our channel\n\nPrevious\n\nNext\n\nIt took 55.1% of the vote.")
    article = parse_article(raw, "clarke_article.txt", ".txt")
    assert article.title == "clarke article"
    assert "Subscribe" not in article.text and "Previous" not in article.text
    assert "55.1%" in article.text


def test_front_matter_and_first_line_title() -> None:
    a = parse_article("---\ntitle: One: two\noutlet: Paper\n---\nBody text.", "x.md", ".md")
    assert (a.title, a.outlet, a.text) == ("One: two", "Paper", "Body text.")
    b = parse_article("Headline here\n\nBody text.", "y.txt", ".txt")
    assert (b.title, b.text) == ("Headline here", "Body text.")


def test_html_keeps_text_and_drops_scripts_and_navigation() -> None:
    html = """<html><head><title>Site | Story</title><meta property="og:site_name" content="Daily">
    <script>alert('x')</script></head><body><nav>Home News</nav><h1>Big story</h1>
    <p>First &amp; foremost.</p><p>Second <b>para</b>.</p><footer>Copyright</footer></body></html>"""
    article = parse_article(html, "s.html", ".html")
    assert article.title == "Big story" and article.outlet == "Daily"
    assert article.text == "First & foremost.\n\nSecond para."


def test_unusable_files_are_skipped_with_a_reason(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "binary.txt").write_bytes(b"\x00\x01\x02garbage")
    (tmp_path / "latin1.txt").write_bytes("Caf\xe9 news\n\nBody \xe9t\xe9.".encode("latin-1"))
    (tmp_path / "notes.csv").write_text("a,b")
    articles, skipped = load_folder(tmp_path)
    assert [a.source for a in articles] == ["latin1.txt"]
    assert "é" in articles[0].text
    assert {s.source: s.reason for s in skipped} == {"binary.txt": "binary file, not text",
                                                     "empty.txt": "no article text"}


def test_read_article_reports_unreadable(tmp_path: Path) -> None:
    result = read_article(tmp_path / "missing.txt", "missing.txt")
    assert isinstance(result, Skipped) and result.reason.startswith("unreadable")
    assert not isinstance(result, Article)
