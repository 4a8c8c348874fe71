"""Text out of the files `streamgate rag ingest` sends: Markdown and plain text as they are, HTML through
the standard library's parser (scripts, styles and markup dropped, block elements kept as paragraphs),
PDF through pypdf (a maintained pure-Python parser; pages become paragraphs).

The text is extracted by the producer, so the worker never needs a file it cannot see; HTML may also
arrive raw on the topic (`text/html`) from another producer and is extracted by the worker with the same
function.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

CONTENT_TYPES = {".md": "text/markdown", ".markdown": "text/markdown", ".txt": "text/plain",
                 ".text": "text/plain", ".html": "text/html", ".htm": "text/html", ".pdf": "application/pdf"}
_BLOCKS = {"p", "div", "section", "article", "li", "br", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "pre",
           "blockquote", "table", "ul", "ol", "header", "footer", "title"}
_SKIP = {"script", "style", "noscript", "template", "svg", "head"}


class UnsupportedFileError(ValueError):
    """A file whose type `rag ingest` does not read."""


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0
        self.title: str | None = None
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skipping += 1
        if tag == "title":
            self._in_title = True
        if tag in _BLOCKS:
            self.parts.append("\n\n")
        if tag in {"h1", "h2", "h3", "h4"}:
            self.parts.append("#" * int(tag[1]) + " ")  # headings become Markdown ones: chunks cut there

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP and self.skipping:
            self.skipping -= 1
        if tag == "title":
            self._in_title = False
        if tag in _BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._in_title and self.title is None and data.strip():
            self.title = data.strip()
        if not self.skipping:
            self.parts.append(data)


def html_text(html: str) -> tuple[str | None, str]:
    """(the page's title, its text with paragraphs separated by blank lines)."""
    parser = _Text()
    parser.feed(html)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).split("\n")]
    text, blank = [], False
    for line in lines:
        if line:
            text.append(line)
            blank = False
        elif not blank and text:
            text.append("")
            blank = True
    return parser.title, "\n".join(text).strip()


def pdf_text(path: Path) -> str:
    from pypdf import PdfReader

    pages = [(page.extract_text() or "").strip() for page in PdfReader(str(path)).pages]
    return "\n\n".join(p for p in pages if p)


def read_document(path: Path) -> tuple[str, str | None, str]:
    """(content type, title, text) of a file; the content type says how the worker cuts it."""
    kind = CONTENT_TYPES.get(path.suffix.lower())
    if kind is None:
        raise UnsupportedFileError(f"{path}: unsupported file type {path.suffix!r} "
                                   f"(one of {', '.join(sorted(CONTENT_TYPES))})")
    if kind == "application/pdf":
        return "text/plain", path.stem, pdf_text(path)
    text = path.read_text(encoding="utf-8", errors="replace")
    if kind == "text/html":
        title, body = html_text(text)
        return "text/markdown", title or path.stem, body
    title = next((line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("# ")), None)
    return kind, title or path.stem, text
