"""Who signs the content credentials: the operator's certificate chain and key, or a local CA made once.

C2PA refuses a self-signed signing certificate, so the local identity is a small CA and a leaf it
signs, with what C2PA's certificate profile asks for (digitalSignature, the emailProtection EKU, key
identifiers). Outputs signed with it validate with "untrusted signer", which is the honest verdict.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..errors import CredentialsUnavailable

logger = logging.getLogger(__name__)

CERTIFICATE_FILE = "signing-chain.pem"
KEY_FILE = "signing-key.pem"
LOCAL_VALIDITY = datetime.timedelta(days=3650)
CURVE_ALGORITHMS = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}


@dataclass(frozen=True)
class SigningIdentity:
    """A PEM certificate chain (signing certificate first), its PEM private key and the C2PA algorithm they make."""

    chain: bytes
    private_key: bytes
    algorithm: str
    fingerprint: str
    """SHA-256 of the signing certificate, as operators compare it (AA:BB:...)."""
    subject: str


def load(certificate_path: Path, key_path: Path, source: str = "SWAPAROONY_SIGNING_CERT and SWAPAROONY_SIGNING_KEY") -> SigningIdentity:
    """An identity from PEM files, checked now so a bad file stops swaps with a reason rather than failing requests.

    The reason names the settings, not the paths: it reaches clients in 503 bodies; the log has the paths.
    """
    try:
        return _identity(certificate_path.read_bytes(), key_path.read_bytes())
    except (OSError, ValueError) as exc:
        problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        logger.error("signing identity %s + %s unusable: %s", certificate_path, key_path, exc)
        raise CredentialsUnavailable(
            f"{source} are not a usable signing identity ({problem}), so pictures cannot carry their content "
            "credentials; the operator must fix them (the server log names the files) and restart."
        ) from exc


def local(state_dir: Path) -> SigningIdentity:
    """The identity kept in state_dir, made there by the first process that needs it; in memory if it cannot be kept."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with _locked(state_dir / ".signing.lock"):
            chain_path, key_path = state_dir / CERTIFICATE_FILE, state_dir / KEY_FILE
            if not (chain_path.exists() and key_path.exists()):
                chain, key = _new_local_identity()
                _write_private(key_path, key)
                _write_private(chain_path, chain)
                logger.info("made a local signing CA and certificate in %s", state_dir)
            return load(chain_path, key_path, "the local signing certificate and key in SWAPAROONY_STATE_DIR")
    except OSError as exc:
        logger.warning("cannot keep a signing certificate in %s (%s); using one in memory, which changes on every "
                       "restart: set SWAPAROONY_STATE_DIR to a writable place, or give SWAPAROONY_SIGNING_CERT/KEY",
                       state_dir, exc.strerror or exc)
        return _identity(*_new_local_identity())


def _identity(chain: bytes, key_pem: bytes) -> SigningIdentity:
    certificates = x509.load_pem_x509_certificates(chain)
    key = serialization.load_pem_private_key(key_pem, password=None)
    leaf = certificates[0]
    if leaf.public_key().public_bytes(*_PUBLIC) != key.public_key().public_bytes(*_PUBLIC):
        raise ValueError("the key does not belong to the first certificate of the chain")
    fingerprint = leaf.fingerprint(hashes.SHA256()).hex(":").upper()
    return SigningIdentity(chain, key_pem, _algorithm(key), fingerprint, leaf.subject.rfc4514_string())


_PUBLIC = (serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _algorithm(key: object) -> str:
    """C2PA's name for what the key signs with: ECDSA by curve, RSA-PSS, or Ed25519."""
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in CURVE_ALGORITHMS:
        return CURVE_ALGORITHMS[key.curve.name]
    if isinstance(key, rsa.RSAPrivateKey):
        return "ps256"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    raise ValueError(f"C2PA cannot sign with a {type(key).__name__} key; use ECDSA P-256/384/521, RSA or Ed25519")


def _new_local_identity() -> tuple[bytes, bytes]:
    """A P-256 CA and a signing certificate it issued: (chain PEM, key PEM)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name, name = _name("Swaparoony local CA"), _name("Swaparoony content credentials")
    ca = (
        _certificate(ca_name, ca_name, ca_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(key_cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        _certificate(name, ca_name, key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, ca))
    return chain, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Swaparoony"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey,
                 now: datetime.datetime) -> x509.CertificateBuilder:
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + LOCAL_VALIDITY))


def _usage(digital_signature: bool = False, key_cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=digital_signature, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=key_cert_sign,
                         crl_sign=key_cert_sign, encipher_only=False, decipher_only=False)


def _write_private(path: Path, data: bytes) -> None:
    """Write readable by this user only, complete or not at all."""
    partial = path.with_suffix(".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    os.replace(partial, path)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Several API workers start at once; one makes the identity, the others wait and read it."""
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
