"""Silver `request_facts`: one row per request, joining its response, route and attempts.

Rebuilt for the dates given (the dates of responses that arrived) and MERGEd on `request_id`, so a
request whose parts land in different sink batches is completed by the next run, and running it twice
changes nothing. Bronze may hold a record twice where a stage is at-least-once (the request path); the
facts take one row per request id (`max` over identical values), and the attempts are summed from the
dispatcher's telemetry, which is exactly once.

Memory follows a slice, not the table: the facts are built and merged in slices of request ids
(`lakehouse.slices`), and attempts and routes are read only from the dates around the ones given.
Building them in one query held ~1.4 KB per request (1.4 GB for a million; the 1M-request demo's
summary was OOM-killed over five million).
"""

from __future__ import annotations

import pyarrow as pa

from lakehouse.slices import dates_around, dates_in, slice_count, slice_of, valid_dates
from shared.tables.delta import open_or_none, write_table
from shared.tables.query import find_tables, run_query, silver_root
from streamgate.config import Settings
from streamgate.storage import TablePath

REQUEST_FACTS_SQL = """
with resp as (
  select request_id, max(date) as date, max(team) as team, max(project) as project,
         max(api_key_id) as api_key_id, max(status) as status, max(reason_code) as reason_code,
         max(provider) as provider, max(model) as model, max(target_index) as target_index,
         bool_or(cache_hit) as cache_hit, max(cache_kind) as cache_kind, max(latency_ms) as latency_ms,
         max(created_at) as created_at, max(completed_at) as completed_at
  from responses where {dates} and {slice} group by request_id
),
att as (
  select request_id, cast(count(*) as bigint) as attempts,
         cast(sum(case when status = 'ok' then 0 else 1 end) as bigint) as failed_attempts,
         cast(sum(prompt_tokens) as bigint) as prompt_tokens,
         cast(sum(completion_tokens) as bigint) as completion_tokens,
         cast(sum(cost_nanousd) as bigint) as cost_nanousd
  from telemetry where {near} and {slice} group by request_id
),
rt as (
  select request_id, max(requested_model) as requested_model, max(strategy) as strategy,
         max(routing_config_version) as routing_config_version, max(policy_version) as policy_version,
         max(region) as region
  from routed where {near} and {slice} group by request_id
)
select resp.*, rt.requested_model, rt.strategy, rt.routing_config_version, rt.policy_version, rt.region,
       coalesce(att.attempts, 0) as attempts, coalesce(att.failed_attempts, 0) as failed_attempts,
       coalesce(att.prompt_tokens, 0) as prompt_tokens,
       coalesce(att.completion_tokens, 0) as completion_tokens,
       coalesce(att.cost_nanousd, 0) as cost_nanousd
from resp left join att on att.request_id = resp.request_id left join rt on rt.request_id = resp.request_id
"""


def merge_request_facts(settings: Settings, dates: list[str] | None = None) -> int:
    """MERGE the facts of requests answered on `dates` (all when None); returns source rows."""
    have = set(find_tables(settings.table_root()))
    if not {"responses", "telemetry", "routed"} <= have:
        return 0
    valid = valid_dates(dates)
    where, near = dates_in(valid), dates_around(valid)
    slices = slice_count(settings, "responses", where)
    path = silver_root(settings) / "request_facts"
    merged = 0
    for index in range(slices):
        facts = run_query(settings, REQUEST_FACTS_SQL.format(dates=where, near=near,
                                                             slice=slice_of(index, slices)))
        merged += facts.num_rows
        _merge(path, facts)
    return merged


def _merge(path: TablePath, facts: pa.Table) -> None:
    if facts.num_rows == 0:
        return
    table = open_or_none(path)
    if table is None:
        write_table(path, facts, partition_by=["date"])
        return
    # the date lets the MERGE read only the partitions the slice touches (a slice condition on the target
    # as well made deltalake 1.6 panic formatting the predicate)
    (table.merge(facts, predicate="t.date = s.date and t.request_id = s.request_id", source_alias="s",
                 target_alias="t")
     .when_matched_update_all().when_not_matched_insert_all().execute())
