"""Content policy: deny-listed patterns, blocked topics and a prompt-token ceiling."""

from __future__ import annotations

import re
from functools import cache

from streams.outcome import Rejection, estimate_tokens
from streams.policy.config import GuardrailConfig

STAGE = "guard"


@cache
def _compiled(patterns: tuple[str, ...],
              topics: tuple[str, ...]) -> tuple[list[re.Pattern[str]], re.Pattern[str] | None]:
    # deny patterns stay separate: each may carry its own inline flags such as (?i)
    blocked = re.compile("|".join(re.escape(t) for t in topics), re.IGNORECASE) if topics else None
    return [re.compile(p) for p in patterns], blocked


def check_content(texts: list[str], rules: GuardrailConfig) -> Rejection | None:
    deny, blocked = _compiled(tuple(rules.deny_patterns), tuple(rules.blocked_topics))
    tokens = 0
    for text in texts:
        tokens += estimate_tokens(len(text))
        if any(p.search(text) for p in deny):
            return Rejection(STAGE, "policy_denied", "the prompt matches a denied pattern", audit=True)
        if blocked is not None and (hit := blocked.search(text)):
            message = f"the prompt mentions a blocked topic ({hit.group(0)!r})"
            return Rejection(STAGE, "blocked_topic", message, audit=True)
    if tokens > rules.max_prompt_tokens:
        message = f"about {tokens} prompt tokens > {rules.max_prompt_tokens}"
        return Rejection(STAGE, "prompt_too_long", message, audit=True)
    return None
