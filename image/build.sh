#!/usr/bin/env bash
# Build an OCI image of a built Bento without Docker and without any container registry:
# a Debian base made with debootstrap, a virtual environment from the Bento's locked requirements,
# and buildah (vfs storage, chroot isolation) to commit it. Runs as root.
#
#   image/build.sh [BENTO_TAG] [IMAGE_NAME]     e.g. image/build.sh swaparoony-cpu:latest swaparoony:cpu
#
# Environment: BENTOML_HOME (where the Bento is), WORK (scratch folder, default a temp dir; a second build in the same
# WORK reuses its Debian base and downloaded wheels),
# DEBIAN_MIRROR, PYTHON (a python with bentoml and pip, default .venv/bin/python).
set -euo pipefail

BENTO_TAG=${1:-swaparoony:latest}
IMAGE_NAME=${2:-swaparoony:latest}
WORK=${WORK:-$(mktemp -d /tmp/swaparoony-image-XXXX)}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PYTHON=${PYTHON:-.venv/bin/python}
BUILDAH=(buildah --storage-driver vfs)
CHECKOUT=$(cd "$(dirname "$0")/.." && pwd)
ROOTFS=$WORK/rootfs
mkdir -p "$WORK"
APP_UID=1001   # any UID works: OpenShift replaces it and keeps group 0

step() { printf '\n==> %s\n' "$*"; }

for tool in buildah debootstrap; do
  command -v "$tool" >/dev/null || { echo "error: $tool is not installed (apt-get install buildah debootstrap)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "error: run as root (debootstrap and buildah's vfs storage need it)" >&2; exit 1; }

step "exporting $BENTO_TAG"
"$PYTHON" -m bentoml export "$BENTO_TAG" "$WORK/bento.tar"
mkdir -p "$WORK/bento" && tar -xf "$WORK/bento.tar" -C "$WORK/bento"

step "Debian base (debootstrap, $DEBIAN_MIRROR)"
if [ ! -x "$WORK/base/usr/bin/python3" ]; then
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,libgomp1 \
    bookworm "$WORK/base" "$DEBIAN_MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log"; exit 1; }
fi
rm -rf "$ROOTFS" && cp -a "$WORK/base" "$ROOTFS"

step "Python packages (the Bento's locked requirements, fetched here, installed offline inside)"
grep -v '^--' "$WORK/bento/env/python/requirements.txt" >"$WORK/requirements.txt"
"$PYTHON" -m pip download -q --only-binary=:all: --python-version 3.11 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform linux_x86_64 --implementation cp -d "$WORK/wheels" -r "$WORK/requirements.txt" --no-deps
mkdir -p "$ROOTFS/tmp/wheels" && cp "$WORK"/wheels/*.whl "$ROOTFS/tmp/wheels/"
cp "$WORK/requirements.txt" "$ROOTFS/tmp/requirements.txt"
chroot "$ROOTFS" /usr/bin/python3 -m venv /opt/venv
chroot "$ROOTFS" /opt/venv/bin/pip install -q --no-index --no-deps --find-links /tmp/wheels -r /tmp/requirements.txt
rm -rf "$ROOTFS/tmp/wheels" "$ROOTFS/tmp/requirements.txt" "$ROOTFS"/var/cache/apt/archives/*.deb

step "the Bento at /home/bentoml/bento, writable by group 0 for an arbitrary UID"
mkdir -p "$ROOTFS/home/bentoml"
cp -a "$WORK/bento" "$ROOTFS/home/bentoml/bento"
# benchmarks/gpu.sh runs inside the image: the benchmarks and the two test helpers they use sit beside the source.
mkdir -p "$ROOTFS/home/bentoml/bento/src/tests"
cp -a "$CHECKOUT/benchmarks" "$ROOTFS/home/bentoml/bento/src/benchmarks"
cp "$CHECKOUT/tests/generated_models.py" "$CHECKOUT/tests/serving.py" "$ROOTFS/home/bentoml/bento/src/tests/"
find "$ROOTFS/home/bentoml/bento/src" -name __pycache__ -prune -exec rm -rf {} +
# BentoML keeps model folders at mode 0700; under OpenShift's arbitrary UID (group 0) that is a
# PermissionError unless group 0 owns the home and has the owner's rights.
chown -R "$APP_UID:0" "$ROOTFS/home/bentoml"
chmod -R g=u "$ROOTFS/home/bentoml"

step "committing $IMAGE_NAME (buildah, vfs)"
container=$("${BUILDAH[@]}" from scratch)
"${BUILDAH[@]}" copy "$container" "$ROOTFS" / >/dev/null
"${BUILDAH[@]}" config \
  --env PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env BENTOML_HOME=/home/bentoml --env HOME=/home/bentoml \
  --env SWAPAROONY_DESTINATIONS_DIR=/home/bentoml/bento/src/destinations \
  --env BENTOML_DO_NOT_TRACK=True \
  --workingdir /home/bentoml/bento --user "$APP_UID:0" --port 3000 \
  --cmd '["bentoml", "serve", "/home/bentoml/bento", "--host", "0.0.0.0", "--port", "3000"]' \
  --label org.opencontainers.image.title=swaparoony "$container"
"${BUILDAH[@]}" commit -q "$container" "$IMAGE_NAME" >/dev/null
"${BUILDAH[@]}" rm "$container" >/dev/null
size=$("${BUILDAH[@]}" images --format '{{.Size}}' "$IMAGE_NAME" | head -1)
carried=$(grep -iE '^(onnxruntime|nvidia-)' "$WORK/requirements.txt" | tr '\n' ' ')
echo "ONNX Runtime and CUDA wheels carried: ${carried:-none}"
echo "built $IMAGE_NAME ($size); push it with: buildah --storage-driver vfs push $IMAGE_NAME docker://<registry>/<name>:<tag>"
