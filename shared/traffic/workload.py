"""A realistic, deterministic request workload for the demo, the tests and the benchmarks.

Several teams with their own projects and keys (real ones, issued by :func:`provision_keys` on the
deployment's keys topic, since the request path authenticates every request), a mix of models and
aliases, prompts from a few words to a few thousand characters, support FAQ questions asked again in
other words, and some prompts carrying PII, so every later stage has something real to do. Seeded, so
a run can be reproduced exactly.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from streamgate.client.request import ChatMessage, ChatRequest, Params, hash_api_key
from streamgate.config import Settings

#: (team, project) -> raw API key, as `provision_keys` returns them
WorkloadKeys = Mapping[tuple[str, str], str]


@dataclass(frozen=True, slots=True)
class TeamProfile:
    team: str
    projects: tuple[str, ...]
    keys: tuple[str, ...]
    models: tuple[str, ...]
    weight: float
    region: str | None = None


TEAMS: tuple[TeamProfile, ...] = (
    TeamProfile("search", ("ranker", "query-rewrite"), ("sk-search-1", "sk-search-2"),
                ("gpt-4o-mini", "fast", "claude-3-5-haiku"), 0.35),
    TeamProfile("support", ("chatbot", "ticket-triage"), ("sk-support-1",),
                ("gpt-4o", "smart", "gpt-4o-mini"), 0.30, region="eu"),
    TeamProfile("research", ("evals",), ("sk-research-1",),
                ("claude-3-5-sonnet", "llama-3-70b", "smart"), 0.20),
    TeamProfile("marketing", ("copy",), ("sk-marketing-1",), ("fast", "gpt-4o-mini"), 0.15),
)

_TOPICS = ("a refund for order {n}", "the quarterly report", "a python function that parses dates",
           "our onboarding e-mail", "the latency spike on {n}", "a product description for item {n}")
_PII = ("Contact me at jane.doe{n}@example.com.", "My card is 4111 1111 1111 1111.",
        "Call +1 415 555 01{n:02d} tomorrow.", "My SSN is 123-45-67{n:02d}.",
        "IBAN DE89 3704 0044 0532 0130 00, please.", "Server 10.0.{n}.17 is down.")


# Support FAQ traffic: the same few questions, asked in different words, at temperature 0 — what the
# exact and semantic caches exist for. Each tuple is one question's phrasings.
_FAQ = (
    ("How do I reset my password?", "How can I reset my password?", "What is the way to reset my password?",
     "I forgot my password, how do I reset it?"),
    ("How do I cancel my subscription?", "How can I cancel my subscription?",
     "What are the steps to cancel my subscription?"),
    ("Where can I download my invoice?", "Where do I download my invoice?", "How do I get my invoice?"),
    ("How do I change my billing address?", "How can I update my billing address?",
     "Where do I change the billing address on my account?"),
    ("Can I get a refund for my last order?", "Is it possible to get a refund for my last order?",
     "Could I be refunded for my last order?"),
    ("How do I add a team member to my account?", "How can I invite a team member to my account?"),
    ("Why was my card declined?", "What is the reason my card was declined?",
     "Why did my card get declined?"),
    ("How do I export my data?", "How can I export all my data?", "What is the way to export my data?"),
)


def _faq(rng: random.Random, profile: TeamProfile) -> tuple[list[ChatMessage], Params, str]:
    question = rng.choice(rng.choices(_FAQ, weights=[1 / (i + 1) for i in range(len(_FAQ))])[0])
    return [ChatMessage(role="user", content=question)], Params(max_tokens=256, temperature=0.0), "chatbot"


def _prompt(rng: random.Random, n: int) -> str:
    text = f"Please write about {rng.choice(_TOPICS).format(n=n % 100)}."
    if rng.random() < 0.12:
        text += " " + rng.choice(_PII).format(n=n % 100)
    size = rng.choices((0, 1, 2), weights=(0.7, 0.25, 0.05))[0]
    if size:
        text += " Context: " + " ".join(rng.choice(("lorem", "ipsum", "gateway", "token", "stream"))
                                        for _ in range(rng.randint(50, 150) * size**2))
    return text


def provision_keys(settings: Settings, *, actor: str = "workload") -> dict[tuple[str, str], str]:
    """One real API key per team and project of the workload, on the deployment's keys topic (each an
    audit event). Issue them before the request-path workers start, or a second before sending: a
    worker learns a new key from the topic within its follower's poll."""
    from shared.identity.admin import KeyAdmin

    admin = KeyAdmin(settings, actor=actor)
    return {(t.team, p): admin.create(t.team, p)[1] for t in TEAMS for p in t.projects}


#: The support chatbot's users wait this long (s): its requests carry a deadline, after which the gateway
#: answers `deadline_exceeded` without calling a provider. Nothing else in the workload has one.
CHATBOT_DEADLINE_S = 60.0


def requests(count: int, *, seed: int = 7, run_id: str | None = None,
             keys: WorkloadKeys | None = None) -> Iterator[ChatRequest]:
    """`count` requests; ids embed `run_id` so repeated runs never collide. `keys` (from
    :func:`provision_keys`): each request carries its team and project's real key; without them, made-up
    keys that only a deployment with `identity.enforce: false` accepts. The same seed gives the same
    requests either way."""
    rng = random.Random(seed)
    run = run_id or uuid.uuid4().hex[:8]
    weights = [t.weight for t in TEAMS]
    for n in range(count):
        profile = rng.choices(TEAMS, weights=weights)[0]
        oddity = rng.random()
        if profile.team == "support" and rng.random() < 0.5:
            messages, params, project = _faq(rng, profile)
            model = "gpt-4o-mini"
        else:
            messages = [ChatMessage(role="user", content=_prompt(rng, n))]
            if rng.random() < 0.3:
                messages.insert(0, ChatMessage(role="system", content="You are a concise assistant."))
            params = Params(max_tokens=rng.choice((64, 256, 1024)), temperature=round(rng.random(), 2),
                            stream=rng.random() < 0.2)
            project, model = rng.choice(profile.projects), rng.choice(profile.models)
        made_up = rng.choice(profile.keys)
        key = keys[(profile.team, project)] if keys is not None else made_up
        request = ChatRequest(
            request_id=f"{run}-{n:09d}",
            team="ghost-team" if oddity < 0.005 else profile.team,
            project=project,
            api_key_id=hash_api_key(key),
            user_id=f"user-{rng.randint(1, 50)}",
            model="gpt-17-ultra" if 0.005 <= oddity < 0.01 else model,
            messages=messages,
            params=params,
            tags={"env": "demo", "feature": rng.choice(("chat", "summarize", "classify"))},
            region=profile.region,
        )
        yield request.with_timeout(CHATBOT_DEADLINE_S) if project == "chatbot" else request
