"""Table care: compact small files, cluster on the common filters, checkpoint, vacuum.

Safe beside the running sink: the sink only appends, and Delta lets a compaction commit alongside
blind appends; the sink's application transactions (its offsets) live in the log, not in data files,
so compaction and vacuum never lose them. Vacuum keeps `vacuum_retention_hours` of history, so audits
can still time-travel that far back.
"""

from __future__ import annotations

from dataclasses import dataclass

from lakehouse.tables import BRONZE
from shared.tables.delta import open_table
from shared.tables.query import find_tables
from streamgate.config import Settings
from streamgate.storage import TablePath

CLUSTER = {t.name: t.cluster_by for t in BRONZE}


@dataclass(frozen=True)
class TableCare:
    table: str
    files_before: int
    files_after: int
    vacuumed: int


def maintain_table(path: TablePath, cluster_by: tuple[str, ...], retention_hours: int, *,
                   compact: bool = True) -> TableCare:
    table = open_table(path)
    before = len(table.file_uris())
    if compact and cluster_by:
        table.optimize.z_order(list(cluster_by))
    elif compact:
        table.optimize.compact()
    table.create_checkpoint()
    removed = table.vacuum(retention_hours=retention_hours, dry_run=False)
    return TableCare(path.name, before, len(open_table(path).file_uris()), len(removed))


#: Tables whose writer is not append-only (the RAG indexer MERGEs: features/collections/indexer.py): a
#: compaction removes files a concurrent MERGE has read, which fails the MERGE, so these are not
#: compacted (each MERGE rewrites the files it touches anyway). They are checkpointed and vacuumed, which
#: commit nothing a MERGE conflicts with; vacuum matters most here, since every MERGE tombstones files.
NOT_APPEND_ONLY = ("rag_",)


def maintain_all(settings: Settings) -> list[TableCare]:
    root = settings.table_root()
    hours = settings.lakehouse.vacuum_retention_hours
    return [maintain_table(path, CLUSTER.get(name, ()), hours, compact=not name.startswith(NOT_APPEND_ONLY))
            for name, path in find_tables(root).items()]
