"""`streamgate lakehouse maintain` and the RAG chunks table (MERGE-written by the indexer): vacuumed and
checkpointed like every table, never compacted (a compaction would fail a concurrent MERGE)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from lakehouse.maintain import maintain_all
from streamgate.config import load_settings


def test_rag_chunks_are_vacuumed_not_compacted(tmp_path: Path) -> None:
    base = load_settings().model_copy(update={"state_dir": tmp_path / "state"})
    settings = base.model_copy(update={"lakehouse": base.lakehouse.model_copy(
        update={"vacuum_retention_hours": 0})})
    root = settings.table_root()
    chunks, other = root / "rag" / "chunks", root / "bronze" / "audit"
    brief = {"delta.deletedFileRetentionDuration": "interval 0 hours"}  # vacuum may remove them at once
    for path in (chunks, other):
        for n in range(3):
            write_deltalake(str(path), pa.table({"doc_id": [f"d{n}"], "text": ["x"]}), mode="append",
                            configuration=brief if n == 0 else None)
    # a MERGE-like rewrite: the old files become tombstones that only vacuum removes
    write_deltalake(str(chunks), pa.table({"doc_id": ["d0"], "text": ["y"]}), mode="overwrite")
    care = {c.table: c for c in maintain_all(settings)}
    assert set(care) == {"chunks", "audit"}
    assert care["chunks"].vacuumed == 3 and care["chunks"].files_after == care["chunks"].files_before == 1
    assert care["audit"].files_before == 3 and care["audit"].files_after == 1  # append-only: compacted
    assert DeltaTable(str(chunks)).to_pyarrow_table().to_pylist() == [{"doc_id": "d0", "text": "y"}]
