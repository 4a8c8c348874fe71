"""`streamgate rag create`: declare a collection in the gateway policy file and publish the policy.

The policy file is edited as text (one entry added under `rag_collections:`, the version bumped) rather
than rewritten from YAML, so its comments and layout survive; the result is validated before it is
written, and published to the config topic, where every request-path worker and indexer picks it up.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from shared.policy.config import GatewayPolicy, PolicyConfigError, RagCollection, parse_policy

_VERSION = re.compile(r'^version:\s*"?([^"\n]+)"?\s*$', re.MULTILINE)
_SECTION = re.compile(r"^rag_collections:\s*(\{\s*\})?\s*$", re.MULTILINE)


def add_collection(path: Path, name: str, spec: RagCollection) -> GatewayPolicy:
    """Add `name` to the policy at `path` (a new version); raises PolicyConfigError when invalid."""
    text = path.read_text()
    current = parse_policy(yaml.safe_load(text), str(path))
    if name in current.rag_collections:
        owner = current.rag_collections[name].owner
        raise PolicyConfigError(f"collection {name!r} already exists (owner {owner})")
    fields = spec.model_dump(exclude_defaults=True)
    fields["owner"] = spec.owner
    entry = f"  {name}: {json.dumps(fields)}\n"
    section = _SECTION.search(text)
    if section is None:
        text = text.rstrip("\n") + "\n\nrag_collections:\n" + entry
    else:
        end = section.end() + 1
        text = text[:section.start()] + "rag_collections:\n" + entry + text[end:]
    version = _VERSION.search(text)
    if version is None:
        raise PolicyConfigError(f"{path} has no version line")
    new_version = f"{version.group(1)}+rag.{name}"
    text = text[:version.start()] + f'version: "{new_version}"' + text[version.end():]
    policy = parse_policy(yaml.safe_load(text), str(path))
    path.write_text(text)
    return policy
