"""The streamgate Feast repo for the plain `feast` CLI (`streamgate features apply` does the same).

    feast -c features/feature_repo -f <state_dir>/features/feature_store.yaml apply

Objects are built from the configured settings (`load_settings()`: config/streamgate.yaml and the
STREAMGATE_* overrides), because the tables they read live under the state directory.
"""

from features.definitions import build
from streamgate.config import load_settings

_defs = build(load_settings())
team, api_key, target, chunk = _defs.team, _defs.api_key, _defs.target, _defs.chunk
provider_health, team_usage, key_usage = _defs.provider_health, _defs.team_usage, _defs.key_usage
team_daily, provider_daily, doc_chunks = _defs.team_daily, _defs.provider_daily, _defs.doc_chunks
routing, request_cost_model = _defs.routing, _defs.request_cost_model
