"""Content policy: deny-listed patterns, blocked topics and a prompt-token ceiling."""

from __future__ import annotations

import re
from functools import cache

from streams.outcome import Rejection, estimate_tokens
from streams.policy.config import GuardrailConfig

STAGE = "guard"


@cache
def _compiled(patterns: tuple[str, ...], topics: tuple[str, ...]) -> tuple[re.Pattern[str] | None, ...]:
    deny = re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None
    blocked = re.compile("|".join(re.escape(t) for t in topics), re.IGNORECASE) if topics else None
    return deny, blocked


def check_content(texts: list[str], rules: GuardrailConfig) -> Rejection | None:
    deny, blocked = _compiled(tuple(rules.deny_patterns), tuple(rules.blocked_topics))
    tokens = 0
    for text in texts:
        tokens += estimate_tokens(len(text))
        if deny is not None and deny.search(text):
            return Rejection(STAGE, "policy_denied", "the prompt matches a denied pattern", audit=True)
        if blocked is not None and (hit := blocked.search(text)):
            return Rejection(STAGE, "blocked_topic", f"the prompt mentions a blocked topic ({hit.group(0)!r})",
                             audit=True)
    if tokens > rules.max_prompt_tokens:
        return Rejection(STAGE, "prompt_too_long", f"about {tokens} prompt tokens > {rules.max_prompt_tokens}",
                         audit=True)
    return None
