"""Bounded passes over large tables: the dates a pass reads, and slices of request ids.

A pass over a whole day (or all history) holds one slice's rows at a time: every request id falls in
exactly one slice, so per-request results (facts, duplicate counts, orphans) are computed slice by
slice and add up to the whole.
"""

from __future__ import annotations

from datetime import date, timedelta

from shared.tables.query import run_query
from streamgate.config import Settings

#: Rows per slice: building and merging a slice of request facts took ~0.3-0.5 GB at 200,000.
ROWS_PER_SLICE = 200_000


def valid_dates(dates: list[str] | None) -> list[str]:
    """Dates come from our own partition values or the command line; anything else never reaches SQL."""
    return sorted(d for d in dates or [] if _is_date(d))


def dates_in(dates: list[str], column: str = "date") -> str:
    """The SQL condition of rows on `dates` (all rows when there are none)."""
    return f"{column} in ({', '.join(repr(d) for d in dates)})" if dates else "true"


def dates_around(dates: list[str], column: str = "date") -> str:
    """`dates` and the day either side: a request's attempts and route land on its answer's date or,
    around midnight, the day next to it."""
    if not dates:
        return "true"
    first = date.fromisoformat(dates[0]) - timedelta(days=1)
    last = date.fromisoformat(dates[-1]) + timedelta(days=1)
    return f"{column} between '{first.isoformat()}' and '{last.isoformat()}'"


def slice_count(settings: Settings, table: str, where: str) -> int:
    """How many slices keep each under `ROWS_PER_SLICE` rows of `table` (a count from file statistics)."""
    found = run_query(settings, f"select count(*) as n from {table} where {where}").column("n")[0].as_py()
    return max(1, -(-int(found or 0) // ROWS_PER_SLICE))


def slice_of(index: int, slices: int, column: str = "request_id") -> str:
    """The SQL condition of one slice, from the last two hex digits of the id's md5: each id is in
    exactly one slice whatever it looks like, and the slices are even (256 values). The id's own last
    characters cost half as much to scan but put every id with a common suffix in one slice."""
    if slices == 1:
        return "true"
    digest = f"md5({column})"
    last, before = f"right({digest}, 1)", f"substr({digest}, 31, 1)"
    return f"(strpos('{_HEX}', {last}) + 16 * strpos('{_HEX}', {before})) % {slices} = {index}"


_HEX = "0123456789abcdef"


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10
