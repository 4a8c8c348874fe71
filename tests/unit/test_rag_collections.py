"""Collections as data: declared in the policy (validated), added by `rag create` without losing the
file's comments; documents extracted from HTML and cut into passages that say what they are about."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from features.collections.chunking import chunk, chunk_id
from features.collections.extract import UnsupportedFileError, html_text, read_document
from features.collections.online import fts_query, fuse
from features.collections.registry import add_collection
from shared.policy.config import GATEWAY_FILE, PolicyConfigError, RagCollection, load_policy


def test_a_collection_must_name_known_teams() -> None:
    policy = load_policy()
    raw = policy.model_dump()
    raw["rag_collections"] = {"kb": {"owner": "nobody"}}
    with pytest.raises(ValueError, match="unknown teams: nobody"):
        type(policy).model_validate(raw)


def test_rag_create_adds_an_entry_and_bumps_the_version_keeping_comments(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(GATEWAY_FILE.read_text())
    before = load_policy(path)
    policy = add_collection(path, "research-papers", RagCollection(owner="research", readers=["search"],
                                                                   chunk_chars=600))
    assert policy.version == f"{before.version}+rag.research-papers"
    spec = policy.rag_collections["research-papers"]
    assert spec.owner == "research" and spec.may_read("search") and not spec.may_read("marketing")
    assert spec.chunk_chars == 600
    assert set(before.rag_collections) < set(policy.rag_collections)
    assert "# Limits per team" in path.read_text()  # comments survive
    with pytest.raises(PolicyConfigError, match="already exists"):
        add_collection(path, "research-papers", RagCollection(owner="research"))


def test_html_loses_scripts_and_keeps_headings_and_paragraphs() -> None:
    title, text = html_text("<html><head><title>Refunds</title><style>p{}</style></head><body>"
                            "<h2>How long</h2><p>Refunds take   5 days.</p><script>x()</script>"
                            "<p>Ask &amp; wait.</p></body></html>")
    assert title == "Refunds"
    assert text == "## How long\n\nRefunds take 5 days.\n\nAsk & wait."


def test_files_by_type(tmp_path: Path) -> None:
    md = tmp_path / "a.md"
    md.write_text("# Title here\n\nbody")
    assert read_document(md) == ("text/markdown", "Title here", "# Title here\n\nbody")
    with pytest.raises(UnsupportedFileError):
        read_document(tmp_path / "a.docx")


def test_chunks_are_cut_at_headings_and_paragraphs_and_say_where_they_are() -> None:
    text = "intro para\n\n## Setup\n\n" + "\n\n".join(f"Paragraph {i} " + "word " * 40 for i in range(6))
    passages = chunk(text, title="Guide", markdown=True, max_chars=500, overlap=50)
    assert passages[0].text == "Guide\nintro para"
    assert all(p.text.startswith("Guide / Setup\n") for p in passages[1:])
    assert all(len(p.text) <= 500 + len("Guide / Setup\n") for p in passages)
    assert [p.seq for p in passages] == list(range(len(passages)))
    body = " ".join(p.text.split("\n", 1)[1] for p in passages[1:])
    assert all(f"Paragraph {i}" in body for i in range(6))  # nothing lost


def test_a_long_paragraph_is_cut_with_overlap_at_sentence_ends() -> None:
    para = " ".join(f"Sentence number {i} says something." for i in range(60))
    passages = chunk(para, title=None, markdown=False, max_chars=300, overlap=60)
    assert len(passages) > 5 and all(len(p.text) <= 300 for p in passages)
    assert all(p.text.endswith(".") for p in passages[:-1])
    for a, b in itertools.pairwise(passages):  # each piece repeats the end of the one before
        assert a.text[-20:] in b.text or b.text[:20] in a.text


def test_chunk_ids_differ_by_version() -> None:
    assert chunk_id("kb", "a.md", 1, 0) != chunk_id("kb", "a.md", 2, 0)
    assert chunk_id("kb", "a.md", 1, 0) == chunk_id("kb", "a.md", 1, 0)


def test_bm25_query_quotes_every_word_and_fusion_rewards_agreement() -> None:
    assert fts_query('What is "NEAR"(x) AND y?') == '"what" OR "is" OR "near" OR "x" OR "and" OR "y"'
    assert fts_query("?!") == ""
    fused = fuse([[(1, 0.1), (2, 0.2), (3, 0.3)], [(3, 9.0), (4, 8.0)]], 3)
    assert fused[0][0] == 3  # in both lists
