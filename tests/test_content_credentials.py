"""Every picture from every route says it is an AI face swap: a C2PA manifest and IPTC XMP, read back as a verifier would."""

from __future__ import annotations

import base64
import datetime
import io
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import c2pa
import httpx
import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from PIL import Image

from conftest import REPO, Server, decode, encode, start_server, stop_server, upload_image, wait_for
from generated_models import photo_gallery, real_watermark_files, write_models
from swaparoony.errors import CredentialsUnavailable
from swaparoony.models import rivagan
from swaparoony.provenance import content_credentials
from swaparoony.provenance.content_credentials import Provenance
from swaparoony.settings import Settings

SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
UPLOAD_NAME = "jane-doe-private-selfie.jpg"
EXIF_SECRET = "Jane Doe, 12 Private Lane"
FORMATS = ["jpeg", "png", "webp"]
MEDIA_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
PREDICT = "/v1/models/swaparoony-face-swap:predict"


def private_upload() -> bytes:
    """The standard upload as a phone would send it: EXIF naming its owner."""
    rgb = Image.fromarray(upload_image()[..., ::-1])
    exif = Image.Exif()
    exif[0x013B] = EXIF_SECRET  # Artist
    exif[0x010E] = EXIF_SECRET  # ImageDescription
    buffer = io.BytesIO()
    rgb.save(buffer, "JPEG", quality=92, exif=exif)
    return buffer.getvalue()


UPLOAD = private_upload()


def post(server: Server, route: str, fields: dict[str, str]) -> httpx.Response:
    response = httpx.post(server.url + route, files={"image": (UPLOAD_NAME, UPLOAD, "image/jpeg")}, data=fields, timeout=120)
    assert response.status_code == 200, response.text
    return response


def pictures(server: Server, route: str, output_format: str) -> list[bytes]:
    """What one route returns for the private upload, as picture files."""
    if route == "/swap":
        body = post(server, route, {"output_format": output_format}).json()
        return [base64.b64decode(item["image_data"]) for item in body["swapped_images"]]
    if route == "/swap_image":
        return [post(server, route, {"destination": "two_faces.png", "output_format": output_format}).content]
    if route in ("/swap_sheet", "/faces_image"):
        return [post(server, route, {"output_format": output_format}).content]
    if route == "/api/v1/swap":
        body = post(server, route, {}).json()
    else:
        body = httpx.post(server.url + PREDICT, json={"image": base64.b64encode(UPLOAD).decode()}, timeout=120).json()
    return [base64.b64decode(item["image_data"]) for item in body["swapped_images"]]


def manifest_store(data: bytes, media_type: str) -> dict:
    with c2pa.Reader(media_type, io.BytesIO(data)) as reader:
        store = json.loads(reader.json())
        store["validation_state"] = reader.get_validation_state()
    return store


def active(store: dict) -> dict:
    return store["manifests"][store["active_manifest"]]


def xmp_source_type(data: bytes) -> str | None:
    with Image.open(io.BytesIO(data)) as image:
        packet = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp") or b""
    packet = packet.decode() if isinstance(packet, bytes) else packet
    found = re.search(r"<Iptc4xmpExt:DigitalSourceType>([^<]+)<", packet)
    return found.group(1) if found else None


def source_types(manifest: dict) -> set[str]:
    return {action.get("digitalSourceType") for assertion in manifest["assertions"]
            if assertion["label"].startswith("c2pa.actions") for action in assertion["data"]["actions"]} - {None}


CASES = [(route, fmt) for route in ("/swap", "/swap_image", "/swap_sheet", "/faces_image") for fmt in FORMATS]
CASES += [("/api/v1/swap", "jpeg"), (PREDICT, "jpeg")]


@pytest.mark.parametrize(("route", "output_format"), CASES)
def test_every_route_and_format_carries_both_marks(server: Server, route: str, output_format: str) -> None:
    for data in pictures(server, route, output_format):
        media_type = Image.MIME[Image.open(io.BytesIO(data)).format]
        assert media_type == MEDIA_TYPES[output_format]
        store = manifest_store(data, media_type)
        manifest = active(store)
        assert store["validation_state"] == "Valid"  # signature and hashes hold; only the local CA is untrusted
        assert [s["code"] for s in store.get("validation_status", [])] == ["signingCredential.untrusted"]
        assert manifest["claim_generator_info"][0]["name"] == "swaparoony"
        assert source_types(manifest) == {SOURCE_TYPE}
        assert xmp_source_type(data) == SOURCE_TYPE
        assert decode(data) is not None


def test_a_swap_names_its_destination_as_parent_and_nothing_of_the_person(server: Server) -> None:
    for output_format in FORMATS:
        (data,) = pictures(server, "/swap_image", output_format)
        store = manifest_store(data, MEDIA_TYPES[output_format])
        manifest = active(store)
        assert [(i["title"], i["relationship"]) for i in manifest["ingredients"]] == [("two_faces.png", "parentOf")]
        text = json.dumps(store)
        for private in (UPLOAD_NAME, "jane-doe", EXIF_SECRET):
            assert private not in text and private.encode() not in data
        assert "thumbnail" not in text and not any("resources" in m for m in store["manifests"].values())
        # No picture inside the picture: one image signature in the file, the result's own.
        signature = {"jpeg": b"\xff\xd8\xff", "png": b"\x89PNG\r\n", "webp": b"WEBPVP8"}[output_format]
        assert data.count(signature) == 1
        assert not any(UPLOAD[i : i + 48] in data for i in range(len(UPLOAD) // 2, len(UPLOAD) - 48, 997))


def inspect(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "swaparoony", "inspect", *args], check=False, capture_output=True,
                          text=True,
                          cwd=REPO, timeout=60)


def test_inspect_tells_a_served_picture_from_a_tampered_or_plain_one(server: Server, tmp_path: Path) -> None:
    (data,) = pictures(server, "/swap_image", "jpeg")
    served = tmp_path / "served.jpg"
    served.write_bytes(data)
    result = inspect(str(served))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "content credentials: Swaparoony" in result.stdout and SOURCE_TYPE in result.stdout
    assert "untrusted signer" in result.stdout
    trusted = inspect(str(served), "--trust", str(server.workdir / "state" / "signing-chain.pem"))
    assert trusted.returncode == 0 and "valid, trusted signer" in trusted.stdout

    tampered = tmp_path / "tampered.jpg"
    middle = len(data) - 2000  # inside the entropy-coded picture, past the manifest
    tampered.write_bytes(data[:middle] + bytes([data[middle] ^ 0x55]) + data[middle + 1 :])
    result = inspect(str(tampered))
    assert result.returncode == 1 and "INVALID" in result.stdout

    plain = tmp_path / "plain.jpg"
    plain.write_bytes(encode(upload_image()))
    result = inspect(str(plain))
    assert result.returncode == 1 and "no manifest" in result.stdout


def test_the_local_signing_identity_is_made_once_kept_private_and_logged(server: Server) -> None:
    state = server.workdir / "state"
    chain, key = state / "signing-chain.pem", state / "signing-key.pem"
    assert oct(key.stat().st_mode & 0o777) == "0o600" and oct(state.stat().st_mode & 0o777) == "0o700"
    leaf = x509.load_pem_x509_certificates(chain.read_bytes())[0]
    fingerprint = leaf.fingerprint(hashes.SHA256()).hex(":").upper()
    assert f"certificate SHA-256 {fingerprint}" in server.log()
    (data,) = pictures(server, "/swap_image", "png")
    assert active(manifest_store(data, "image/png"))["signature_info"]["cert_serial_number"] == str(leaf.serial_number)


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory, models_dir: Path, gallery_dir: Path) -> Iterator[Callable[..., Server]]:
    """Starts servers with extra settings, and stops them all at the end."""
    running: list[Server] = []

    def start(env: dict[str, str], wait_ready: bool = True) -> Server:
        running.append(start_server(tmp_path_factory.mktemp("credentials"), {
            "SWAPAROONY_MODELS_DIR": str(models_dir), "SWAPAROONY_DESTINATIONS_DIR": str(gallery_dir), **env,
        }, wait_ready=wait_ready))
        return running[-1]

    yield start
    for server in running:
        stop_server(server.process)


def usage(**allowed: bool) -> x509.KeyUsage:
    flags = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
             "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")
    return x509.KeyUsage(**{flag: allowed.get(flag, False) for flag in flags})


def operator_identity(directory: Path) -> tuple[Path, Path, x509.Certificate]:
    """What an operator brings: an RSA signing certificate from their own (P-384) CA, as tls.crt and tls.key."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP384R1()), rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Booth operator CA")])
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Booth operator")])

    def certificate(subject: x509.Name, public_key: object) -> x509.CertificateBuilder:
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name).public_key(public_key)
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=30)))

    ca = (certificate(ca_name, ca_key.public_key())
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(usage(key_cert_sign=True, crl_sign=True), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA384()))
    leaf = (certificate(name, key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA384()))
    cert, key_path = directory / "tls.crt", directory / "tls.key"
    cert.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, ca)))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert, key_path, leaf


def test_the_operators_certificate_signs_and_the_visible_label_shows(server: Server, started: Callable[..., Server],
                                                                     tmp_path: Path) -> None:
    cert, key, leaf = operator_identity(tmp_path)
    labelled = started({"SWAPAROONY_SIGNING_CERT": str(cert), "SWAPAROONY_SIGNING_KEY": str(key),
                        "SWAPAROONY_VISIBLE_LABEL": "on"})
    (data,) = pictures(labelled, "/swap_image", "png")
    manifest = active(manifest_store(data, "image/png"))
    assert manifest["signature_info"]["cert_serial_number"] == str(leaf.serial_number)
    assert manifest["signature_info"]["alg"].lower() == "ps256"  # chosen from the operator's RSA key
    assert not (labelled.workdir / "state" / "signing-key.pem").exists()  # no local CA when the operator gives one

    for output_format in ("png", "jpeg"):  # JPEG results are spliced into the labelled destination's bands
        (with_label,) = pictures(labelled, "/swap_image", output_format)
        (plain,) = pictures(server, "/swap_image", output_format)
        changed = np.abs(decode(with_label).astype(int) - decode(plain)).max(axis=2) > (0 if output_format == "png" else 24)
        rows, cols = np.nonzero(changed)
        height, width = changed.shape
        assert rows.min() > height * 0.85 and cols.min() > width * 0.6  # only a small box in the bottom-right corner
        assert changed.sum() > 500, output_format


def test_a_broken_signing_key_stops_swaps_with_the_reason(tmp_path: Path) -> None:
    """In process: the engine's start raises this, and /readyz and every API answer 503 with an engine start's reason
    (proved over HTTP by the unreadable-gallery tests, the same path)."""
    cert, _, _ = operator_identity(tmp_path)
    other_key = tmp_path / "other.key"
    other_key.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(CredentialsUnavailable, match="key does not belong") as refused:
        content_credentials.from_settings(Settings(signing_cert=cert, signing_key=other_key, state_dir=tmp_path / "state"),
                                          "1.0")
    assert refused.value.status == 503


def test_marks_off_send_plain_pictures_and_say_so_in_the_log(started: Callable[..., Server], tmp_path: Path) -> None:
    """Credentials and watermark off, on the real watermark files and photo portraits that carry the mark when on."""
    models = real_watermark_files(write_models(tmp_path / "models"))
    plain = started({"SWAPAROONY_CONTENT_CREDENTIALS": "off", "SWAPAROONY_WATERMARK": "off",
                     "SWAPAROONY_MODELS_DIR": str(models), "SWAPAROONY_DESTINATIONS_DIR": str(photo_gallery(tmp_path / "photos"))})
    for number, data in enumerate(pictures(plain, "/swap", "jpeg")):
        with pytest.raises(c2pa.C2paError):
            manifest_store(data, "image/jpeg")
        assert xmp_source_type(data) is None
        (tmp_path / f"{number}.jpg").write_bytes(data)
        assert not rivagan.read(tmp_path / f"{number}.jpg", models).found
    assert "content credentials are off" in plain.log() and "watermark is off" in plain.log()


def test_xmp_only_marks_without_a_signature_or_a_signing_identity(tmp_path: Path) -> None:
    marker = content_credentials.from_settings(Settings(content_credentials="xmp", state_dir=tmp_path / "state"), "1.0")
    data = marker.mark(encode(upload_image()), "image/jpeg", Provenance("a test"))
    assert xmp_source_type(data) == SOURCE_TYPE
    with pytest.raises(c2pa.C2paError):
        manifest_store(data, "image/jpeg")
    assert not (tmp_path / "state").exists()
