"""Per-model behaviour of the simulator: latency distribution, time to first token, failures, usage."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from streamgate.config import REPO_ROOT, ConfigError

_Z99 = 2.326  # standard normal quantile of 0.99


class Profile(BaseModel):
    """What one model does. Latency is log-normal from its median and p99 (equal: fixed)."""

    model_config = ConfigDict(extra="forbid")

    median_ms: float = Field(default=40.0, ge=0)
    p99_ms: float = Field(default=200.0, ge=0)
    #: Share of the latency spent before the first token (streamed responses).
    ttft_share: float = Field(default=0.3, ge=0, le=1)
    error_rate: float = Field(default=0.0, ge=0, le=1)
    rate_limit_rate: float = Field(default=0.0, ge=0, le=1)
    retry_after_s: float = Field(default=1.0, ge=0)
    #: Share of calls that never answer (the client's timeout decides).
    hang_rate: float = Field(default=0.0, ge=0, le=1)
    #: Share of JSON-mode answers that are not valid JSON.
    invalid_json_rate: float = Field(default=0.0, ge=0, le=1)
    completion_tokens_min: int = Field(default=20, ge=1)
    completion_tokens_max: int = Field(default=120, ge=1)

    def latency_s(self, rng: random.Random) -> float:
        if self.median_ms <= 0:
            return 0.0
        if self.p99_ms <= self.median_ms:
            return self.median_ms / 1000
        sigma = math.log(self.p99_ms / self.median_ms) / _Z99
        return rng.lognormvariate(math.log(self.median_ms), sigma) / 1000

    def merged(self, changes: dict[str, Any]) -> Profile:
        return Profile.model_validate(self.model_dump() | changes)


class Profiles(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default: Profile = Profile()
    models: dict[str, Profile] = {}

    def for_model(self, model: str) -> Profile:
        return self.models.get(model, self.default)


def load_profiles(path: Path) -> Profiles:
    path = path if path.is_absolute() else REPO_ROOT / path
    try:
        raw = yaml.safe_load(path.read_text()) or {}
        return Profiles.model_validate(raw)
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"simulator profiles {path}: {exc}") from exc
