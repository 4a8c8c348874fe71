"""Make a cluster's ACLs and SCRAM users match schemas/principals.yaml, and report drift.

Idempotent like the topics: the wanted bindings are computed from the spec for the deployment's prefix
and principal names, compared with what the cluster describes, and only the missing ones are created.
Bindings the cluster has for these principals under this prefix that the spec does not name are
reported as drift, not deleted: an operator may have granted them on purpose.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialUpsertion,
)

from schemas.principals import AclRule, acl_rules, load_principals
from streamgate.config import Settings
from streamgate.kafka.security import ensure_credentials

_RESOURCE = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP,
             "transactional_id": ResourceType.TRANSACTIONAL_ID}
_PATTERN = {"literal": ResourcePatternType.LITERAL, "prefixed": ResourcePatternType.PREFIXED}
_OPERATION = {"read": AclOperation.READ, "write": AclOperation.WRITE, "all": AclOperation.ALL}
_SCRAM_ITERATIONS = 8192


@dataclass
class AclReport:
    created: list[AclRule] = field(default_factory=list)
    unchanged: int = 0
    drift: list[str] = field(default_factory=list)
    users_created: list[str] = field(default_factory=list)
    dry_run: bool = False

    def summary(self) -> str:
        verb = "would create" if self.dry_run else "created"
        return (f"ACLs: {verb} {len(self.created)}, unchanged {self.unchanged}, drift {len(self.drift)}; "
                f"SCRAM users {verb} {len(self.users_created)}")


def role_names(settings: Settings) -> dict[str, str]:
    """Role -> principal name for every role the spec declares."""
    security = settings.kafka.security
    return {role: security.principal(role) for role in load_principals()}  # type: ignore[arg-type]


def wanted_rules(settings: Settings) -> set[AclRule]:
    return acl_rules(load_principals(), role_names(settings), settings.kafka.topic_prefix)


def binding(rule: AclRule) -> AclBinding:
    return AclBinding(_RESOURCE[rule.resource_type], rule.name, _PATTERN[rule.pattern],
                      f"User:{rule.principal}", "*", _OPERATION[rule.operation], AclPermissionType.ALLOW)


def _as_rule(b: AclBinding) -> AclRule | None:
    """The rule an ALLOW binding on any host expresses, or None when it is of another shape."""
    kinds = {v: k for k, v in _RESOURCE.items()}
    patterns = {v: k for k, v in _PATTERN.items()}
    ops = {v: k for k, v in _OPERATION.items()}
    if (b.permission_type != AclPermissionType.ALLOW or b.host != "*" or b.restype not in kinds
            or b.resource_pattern_type not in patterns or b.operation not in ops
            or not b.principal.startswith("User:")):
        return None
    return AclRule(b.principal[5:], kinds[b.restype], b.name, patterns[b.resource_pattern_type],  # type: ignore[arg-type]
                   ops[b.operation])  # type: ignore[arg-type]


def apply_acls(settings: Settings, admin: AdminClient, *, dry_run: bool = False,
               timeout_s: float = 30.0, others: Iterable[str] = ()) -> AclReport:
    """Create the SCRAM users (when `manage_users`) and ACL bindings the spec needs; report drift.
    `others`: the prefixes of the other deployments on the cluster, whose bindings are theirs, not drift
    of this one (the unprefixed deployment's prefix is the start of every name)."""
    report = AclReport(dry_run=dry_run)
    security = settings.kafka.security
    if not security.enabled:
        return report
    if security.manage_users:
        report.users_created = ensure_users(settings, admin, dry_run=dry_run, timeout_s=timeout_s)
    wanted = wanted_rules(settings)
    have, report.drift = _describe(settings, admin, wanted, timeout_s, others)
    report.created = sorted(wanted - have)
    report.unchanged = len(have)
    if report.created and not dry_run:
        created = admin.create_acls([binding(r) for r in report.created], request_timeout=timeout_s)
        for fut in created.values():
            fut.result()
        _wait_effective(settings, admin, wanted, timeout_s)
    return report


def _describe(settings: Settings, admin: AdminClient, wanted: set[AclRule], timeout_s: float,
              others: Iterable[str] = ()) -> tuple[set[AclRule], list[str]]:
    """The wanted rules the broker enforces, and the other bindings of these principals under this
    deployment's prefix and not under another deployment's longer one (drift)."""
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY,  # type: ignore[arg-type]
                                  None, None, AclOperation.ANY, AclPermissionType.ANY)  # type: ignore[arg-type]
    existing = admin.describe_acls(everything, request_timeout=timeout_s).result()
    principals = {f"User:{n}" for n in role_names(settings).values()}
    prefix = settings.kafka.topic_prefix
    nested = tuple(p for p in others if len(p) > len(prefix) and p.startswith(prefix))
    have: set[AclRule] = set()
    drift: list[str] = []
    for b in existing:
        if b.principal not in principals or not b.name.startswith(prefix) or b.name.startswith(nested):
            continue
        rule = _as_rule(b)
        if rule is not None and rule in wanted:
            have.add(rule)
        else:
            drift.append(f"{b.principal} {b.permission_type.name} {b.operation.name} on {b.restype.name} "
                         f"{b.resource_pattern_type.name} {b.name!r} (host {b.host})")
    return have, drift


#: On a cluster: how long after the ACLs are described every time to wait for the slowest broker.
PROPAGATION_MARGIN_S = 1.0


def _wait_effective(settings: Settings, admin: AdminClient, wanted: set[AclRule], timeout_s: float) -> None:
    """create_acls returns when the controller accepted the records; the broker's authorizer applies
    them a moment later. Callers start clients right away, so wait until the broker describes them."""
    deadline = time.monotonic() + timeout_s
    # each broker applies the controller's records on its own: on a cluster, one broker describing them
    # is not all of them enforcing them (a 3-broker chaos run's first produce was refused). The admin
    # requests go to brokers of librdkafka's choosing, so ask several times, then leave a short margin.
    brokers = len(admin.list_topics(timeout=timeout_s).brokers)
    seen = 0
    while time.monotonic() < deadline:
        seen = seen + 1 if _describe(settings, admin, wanted, timeout_s)[0] == wanted else 0
        if seen >= (1 if brokers <= 1 else 3 * brokers):
            if brokers > 1:
                time.sleep(PROPAGATION_MARGIN_S)
            return
        time.sleep(0.1)
    raise TimeoutError(f"ACLs were created but the broker does not enforce them after {timeout_s:.0f} s")


def ensure_users(settings: Settings, admin: AdminClient, *, dry_run: bool = False,
                 timeout_s: float = 30.0) -> list[str]:
    """SCRAM credentials for every principal the cluster lacks, with passwords from (or generated into)
    the credentials file. The admin user itself is created when the broker is formatted."""
    names = sorted(set(role_names(settings).values()))
    known: set[str] = set()
    try:
        described = admin.describe_user_scram_credentials(names, request_timeout=timeout_s)
        for user, fut in described.items():  # type: ignore[union-attr]
            try:
                if fut.result().scram_credential_infos:
                    known.add(user)
            except KafkaException:
                pass  # RESOURCE_NOT_FOUND: no credentials for this user yet
    except KafkaException:
        pass
    missing = [n for n in names if n not in known]
    if missing and not dry_run:
        passwords = ensure_credentials(settings, names)
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, _SCRAM_ITERATIONS)
        upserts: list[UserScramCredentialAlteration] = [
            UserScramCredentialUpsertion(n, info, passwords[n].encode()) for n in missing]
        for fut in admin.alter_user_scram_credentials(upserts, request_timeout=timeout_s).values():
            fut.result()
    return missing


def drop_acls(settings: Settings, admin: AdminClient, timeout_s: float = 30.0) -> int:
    """Delete every ACL binding on a resource under this deployment's prefix (nested prefixes included):
    a deployment torn down."""
    prefix = settings.kafka.topic_prefix
    if not settings.kafka.security.enabled or not prefix:
        return 0
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY,  # type: ignore[arg-type]
                                  None, None, AclOperation.ANY, AclPermissionType.ANY)  # type: ignore[arg-type]
    mine = {b for b in admin.describe_acls(everything, request_timeout=timeout_s).result()
            if b.name.startswith(prefix)}
    filters = [AclBindingFilter(b.restype, b.name, b.resource_pattern_type, b.principal, b.host, b.operation,
                                b.permission_type) for b in mine]
    deleted: set[AclBinding] = set()
    for fut in (admin.delete_acls(filters, request_timeout=timeout_s).values() if filters else ()):
        deleted.update(fut.result())
    return len(deleted)
