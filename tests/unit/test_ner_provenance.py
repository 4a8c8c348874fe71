"""The NER model package's files are the ones docs/pii.md verified against Explosion's en_core_web_sm 3.8.0
(git blob ids of a public repository that commits Explosion's release unpacked): a re-upload with other
weights under the same name and version fails here, not silently in production."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import pytest

from shared.guardrails.ner import MODEL_PACKAGE

#: `git ls-tree -r 636c6fdb Resource/Models/ner/en_core_web_sm/` in NEKOparapa/AiNiee (docs/pii.md, step 5)
UPSTREAM_BLOB_IDS = {
    "ner/model": "adff6af669c6f79649b76a799875067404088ccd",
    "ner/moves": "0756057e832e59988b4c130d8713fc64ffbaaa9d",
    "tok2vec/model": "bacd31428718227b36449a7b3478161a71f8584b",
    "tagger/model": "1d54a22c4e5b782dd88dd9d447498f02ad51882b",
    "parser/model": "89468894504a87ca092a873aacb3ee3779d2018c",
    "senter/model": "e929869715388af1597606ea45b6c43a8ef6f4cc",
    "tokenizer": "ba2f4615241984f45f222cb10735a0fb291f113b",
    "vocab/lookups.bin": "928cf9df02600a09c6c60d52b87f4162c7f82c17",
    "vocab/strings.json": "91a19ed6aec2abe3cc8e4bb52662e36f39e64794",
    "config.cfg": "c28572bece876c537fb3ee7983d58b10fb2dc361",
}


def git_blob_id(path: Path) -> str:
    """What `git hash-object` prints: SHA-1 over "blob <size>\\0" and the content."""
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\x00" % len(data) + data, usedforsecurity=False).hexdigest()


def test_git_blob_id_is_gits(tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "hello").write_bytes(b"hello\n")
    assert git_blob_id(tmp_path / "empty") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"  # known git ids
    assert git_blob_id(tmp_path / "hello") == "ce013625030ba8dba906f756967f9e9ca394464a"


@pytest.mark.skipif(importlib.util.find_spec(MODEL_PACKAGE) is None, reason="NER model package not installed")
def test_the_installed_model_files_are_explosions() -> None:
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    assert spec is not None and spec.origin is not None
    (model_dir,) = [d for d in Path(spec.origin).parent.iterdir() if (d / "meta.json").exists()]
    got = {name: git_blob_id(model_dir / name) for name in UPSTREAM_BLOB_IDS}
    assert got == UPSTREAM_BLOB_IDS
