"""Kafka authentication: per-principal SCRAM passwords, client security properties, a local TLS CA.

Passwords are generated per deployment and kept in one JSON file (mode 0600) under the state directory,
never in a config file, a log or a topic. Clients get their security properties only from
:func:`client_security` (through streamgate/kafka/clients.py), so each component connects as its own
principal and nothing else needs to know how.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from streamgate.config import Role, Settings


class KafkaSecurityError(RuntimeError):
    """Credentials or certificates are missing or unusable; the message says how to fix it."""


def credentials_path(settings: Settings) -> Path:
    return settings.resolve(settings.kafka.security.credentials_file)


def ca_path(settings: Settings) -> Path:
    return settings.resolve(settings.kafka.security.ca_file)


def load_credentials(settings: Settings) -> dict[str, str]:
    """{principal: password} from the credentials file."""
    path = credentials_path(settings)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise KafkaSecurityError(
            f"no Kafka credentials at {path}: `streamgate kafka up` writes them for the local broker; for "
            "an external cluster write {principal: password} JSON there (mode 0600) or set "
            "kafka.security.credentials_file") from exc
    except (OSError, ValueError) as exc:
        raise KafkaSecurityError(f"the Kafka credentials file {path} is unreadable: {exc}") from exc
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise KafkaSecurityError(f"the Kafka credentials file {path} must hold {{principal: password}}")
    return data


def ensure_credentials(settings: Settings, principals: list[str]) -> dict[str, str]:
    """The credentials file with a fresh random password for every principal it lacks (0600, atomic)."""
    path = credentials_path(settings)
    current = load_credentials(settings) if path.exists() else {}
    missing = [p for p in principals if p not in current]
    if missing:
        current |= {p: secrets.token_urlsafe(24) for p in missing}
        write_private(path, json.dumps(current, indent=2, sort_keys=True) + "\n")
    return current


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` readable by the owner only; the file never exists with wider rights."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(tmp, path)


def client_security(settings: Settings, role: Role) -> dict[str, Any]:
    """librdkafka properties that authenticate as `role`'s principal ({} with PLAINTEXT)."""
    security = settings.kafka.security
    if not security.enabled:
        return {}
    principal = security.principal(role)
    password = load_credentials(settings).get(principal)
    if password is None:
        raise KafkaSecurityError(f"no password for Kafka principal {principal!r} in "
                                 f"{credentials_path(settings)}; run `streamgate topics apply` to create it")
    props: dict[str, Any] = {"security.protocol": security.protocol, "sasl.mechanism": security.mechanism,
                             "sasl.username": principal, "sasl.password": password}
    if security.protocol == "SASL_SSL":
        props["ssl.ca.location"] = str(ca_path(settings))
    return props


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    #: PKCS#8 private key followed by the certificate chain, as Kafka's PEM keystore wants it.
    keystore: Path


def ensure_local_tls(settings: Settings, directory: Path, host: str = "127.0.0.1") -> TlsFiles:
    """A self-signed CA (at `kafka.security.ca_file`) and a broker certificate for `host` signed by it,
    generated once per state directory. For the local broker only: a real cluster uses its own PKI."""
    ca_file, keystore = ca_path(settings), directory / "broker-keystore.pem"
    if ca_file.exists() and keystore.exists():
        return TlsFiles(ca_file, keystore)
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC) - timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "streamgate local Kafka CA")])
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now).not_valid_after(now + timedelta(days=825))
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(host))]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + timedelta(days=825))
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    directory.mkdir(parents=True, exist_ok=True)
    write_private(keystore, (key_pem + cert.public_bytes(pem) + ca_cert.public_bytes(pem)).decode())
    ca_file.parent.mkdir(parents=True, exist_ok=True)
    ca_file.write_bytes(ca_cert.public_bytes(pem))  # public: clients need it to verify the broker
    return TlsFiles(ca_file, keystore)
