"""Certificates and keys for a local control plane: one CA, the API server's serving cert, client certs.

Client certificates are the identities: the API server maps CN to the user name and O to groups, and
anything signed by its client CA is accepted, so new identities can be minted at any time without
restarting it (a static token file would need a restart). EC P-256 keys: fast to generate.
"""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = timedelta(days=365)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write_private(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    """Paths of everything the control plane and its clients need."""

    dir: Path
    ca: CertPair
    serving: CertPair
    admin: CertPair
    sa_key: Path  # service-account token signing key (private)
    sa_pub: Path  # its public half, for verification

    def issue_client(self, name: str, user: str, groups: list[str]) -> CertPair:
        """A client cert for `user` in `groups`, signed by this CA, stored under identities/."""
        ca_cert = x509.load_pem_x509_certificate(self.ca.cert.read_bytes())
        ca_key = serialization.load_pem_private_key(self.ca.key.read_bytes(), password=None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        out = self.dir / "identities"
        out.mkdir(exist_ok=True)
        return _issue(ca_cert, ca_key, out / name, user, groups, client=True)


def _name(cn: str, orgs: list[str] | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs or []]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _make_ca(dir: Path) -> CertPair:
    key = _new_key()
    now = datetime.now(UTC)
    name = _name("backupcenter-local-ca")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + VALIDITY * 10)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    pair = CertPair(dir / "ca.crt", dir / "ca.key")
    pair.cert.write_bytes(_cert_pem(cert))
    _write_private(pair.key, _key_pem(key))
    return pair


def _issue(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    stem: Path,
    cn: str,
    orgs: list[str],
    *,
    client: bool = False,
    dns: list[str] | None = None,
    ips: list[str] | None = None,
) -> CertPair:
    key = _new_key()
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn, orgs))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
    )
    if dns or ips:
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns or []]
        sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips or []]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    pair = CertPair(stem.with_name(stem.name + ".crt"), stem.with_name(stem.name + ".key"))
    pair.cert.write_bytes(_cert_pem(cert))
    _write_private(pair.key, _key_pem(key))
    return pair


def ensure_pki(dir: Path) -> Pki:
    """Create the PKI under dir, or reuse it (so kubeconfigs written earlier stay valid)."""
    dir.mkdir(parents=True, exist_ok=True)
    pki = Pki(
        dir=dir,
        ca=CertPair(dir / "ca.crt", dir / "ca.key"),
        serving=CertPair(dir / "apiserver.crt", dir / "apiserver.key"),
        admin=CertPair(dir / "admin.crt", dir / "admin.key"),
        sa_key=dir / "sa.key",
        sa_pub=dir / "sa.pub",
    )
    if all(p.exists() for p in (pki.ca.cert, pki.serving.key, pki.admin.key, pki.sa_key, pki.sa_pub)):
        return pki
    _make_ca(dir)
    ca_cert = x509.load_pem_x509_certificate(pki.ca.cert.read_bytes())
    ca_key = serialization.load_pem_private_key(pki.ca.key.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    _issue(
        ca_cert,
        ca_key,
        dir / "apiserver",
        "kube-apiserver",
        [],
        dns=[
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ],
        ips=["127.0.0.1", "10.96.0.1"],
    )
    # system:masters bypasses RBAC: the admin, the controller-manager and the agent use it.
    _issue(ca_cert, ca_key, dir / "admin", "backupcenter-admin", ["system:masters"], client=True)
    sa = _new_key()
    _write_private(pki.sa_key, _key_pem(sa))
    pki.sa_pub.write_bytes(
        sa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return pki


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(path: Path, server: str, ca: Path, client: CertPair, user: str, context: str) -> Path:
    """A self-contained kubeconfig (certs embedded), usable from any directory or machine user."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": context, "cluster": {"server": server, "certificate-authority-data": _b64(ca)}}
        ],
        "users": [
            {
                "name": user,
                "user": {"client-certificate-data": _b64(client.cert), "client-key-data": _b64(client.key)},
            }
        ],
        "contexts": [{"name": context, "context": {"cluster": context, "user": user}}],
        "current-context": context,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path
