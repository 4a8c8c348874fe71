"""Cut a document into passages small enough to embed well and to quote in a prompt.

Markdown is cut at its headings first (code fences stay whole); every text then at blank lines, paragraphs
packed up to `max_chars`; a paragraph longer than that is cut at the last sentence end or space before the
limit, the next piece repeating `overlap` characters so a sentence cut in two is whole in one of them.
Each passage starts with the document's title and section, so it says what it is about on its own (the
embedding and BM25 both see it). A chunk's id names the document version and its place in it, so a new
version's chunks never collide with the old one's.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_PARAGRAPHS = re.compile(r"\n\s*\n")


@dataclass(frozen=True)
class Passage:
    seq: int
    section: str
    text: str


def chunk_id(collection: str, doc_id: str, version: int, seq: int) -> str:
    return hashlib.sha256(f"{collection}\x00{doc_id}\x00{version}\x00{seq}".encode()).hexdigest()[:20]


def sections(text: str, markdown: bool) -> list[tuple[str, str]]:
    """(heading, body) pairs; one untitled section for plain text."""
    if not markdown:
        return [("", text)]
    out: list[tuple[str, str]] = []
    heading, lines, fenced = "", list[str](), False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        match = None if fenced else _HEADING.match(line)
        if match:
            out.append((heading, "\n".join(lines)))
            heading, lines = match.group(2).strip(), []
        else:
            lines.append(line)
    out.append((heading, "\n".join(lines)))
    return [(h, b) for h, b in out if b.strip()]


def _cut(paragraph: str, max_chars: int, overlap: int) -> list[str]:
    pieces, start = [], 0
    while len(paragraph) - start > max_chars:
        window = paragraph[start:start + max_chars]
        end = max(window.rfind(". "), window.rfind("? "), window.rfind("! "))
        end = end + 1 if end > max_chars // 2 else window.rfind(" ")
        end = end if end > max_chars // 4 else max_chars
        pieces.append(window[:end].strip())
        start = max(start + end - overlap, start + 1)
    pieces.append(paragraph[start:].strip())
    return [p for p in pieces if p]


def pack(body: str, max_chars: int, overlap: int) -> list[str]:
    """Paragraphs packed up to `max_chars`; longer ones cut with `overlap`."""
    parts: list[str] = []
    current = ""
    for para in (p.strip() for p in _PARAGRAPHS.split(body)):
        if not para:
            continue
        for piece in _cut(para, max_chars, overlap) if len(para) > max_chars else [para]:
            if current and len(current) + 2 + len(piece) > max_chars:
                parts.append(current)
                current = ""
            current = f"{current}\n\n{piece}" if current else piece
    return [*parts, current] if current else parts


def chunk(text: str, *, title: str | None, markdown: bool, max_chars: int, overlap: int) -> list[Passage]:
    passages: list[Passage] = []
    for heading, body in sections(text, markdown):
        label = " / ".join(x for x in (title, heading) if x)
        for part in pack(body, max_chars, min(overlap, max_chars // 2)):
            passages.append(Passage(len(passages), heading, f"{label}\n{part}" if label else part))
    return passages
