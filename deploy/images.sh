#!/usr/bin/env bash
# Serre's OCI images, built without Docker (Debian buildah), for any registry.
#
#   deploy/images.sh build [IMAGE...]      build images (default: all) into buildah's storage
#   deploy/images.sh push REGISTRY [IMAGE...]
#                                          build, then push as REGISTRY/serre/NAME:TAG
#   deploy/images.sh list                  the images this script builds
#
# Images: serre-operator (entrypoint serre-operator), serre-api (entrypoint serre-api; the
# Cedar policies in /etc/serre/policies; also runs the trial runs' init step fetch-grants
# and the node-energy agent) and the example vendor model serre-example-model
# (deploy/examples/model: what a trial run executes; see its README). Each is a Debian
# bookworm root reduced to libc, libgcc and the CA certificates (made with mmdebstrap,
# cached) plus one binary, running as the non-root user 65532 and fit for a read-only root
# filesystem. Only the binaries of the images asked for are built (each image's crate and
# binary share its name). Beside each image, the build writes
# a CycloneDX SBOM (the Rust dependency tree from cargo-cyclonedx, plus the Debian
# packages of the root) to $SERRE_IMAGES_OUT/NAME.cdx.json; the image carries it at
# /usr/share/serre/sbom.cdx.json.
#
# Environment:
#   SERRE_IMAGE_TAG      tag (default: the chart's appVersion)
#   SERRE_IMAGE_PREFIX   local name prefix (default registry.metropolegrandparis.fr/serre)
#   SERRE_CARGO_PROFILE  release (default) or dev (what the tests built: faster locally)
#   SERRE_IMAGES_OUT     SBOMs and digests (default target/images)
#   SERRE_CACHE          cache of the base root and tools (default ~/.cache/serre)
#   SERRE_PUSH_TLS_VERIFY  false for a plain-HTTP registry (default: true, unless the
#                          registry is on this machine's host address or loopback)
set -euo pipefail
LOG_TAG=images
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/deploy/dev/lib.sh"
cd "$ROOT"

CACHE=${SERRE_CACHE:-$HOME/.cache/serre}
TAG=${SERRE_IMAGE_TAG:-$(awk -F'"' '/^appVersion:/{print $2}' charts/serre/Chart.yaml)}
PREFIX=${SERRE_IMAGE_PREFIX:-registry.metropolegrandparis.fr/serre}
PROFILE=${SERRE_CARGO_PROFILE:-release}
OUT=${SERRE_IMAGES_OUT:-$ROOT/target/images}
BUILDAH=(buildah --storage-driver vfs)
IMAGES="serre-operator serre-api serre-example-model"
BASE_PACKAGES="libc6 libgcc-s1 ca-certificates"
CYCLONEDX_VERSION=0.5.7

case $PROFILE in
  release) PROFILE_DIR=release ;;
  dev) PROFILE_DIR=debug ;;
  *) log "SERRE_CARGO_PROFILE must be release or dev, not '$PROFILE'"; exit 2 ;;
esac
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

# --- base root: mmdebstrap extract of a few Debian packages, cached by their list --------
base_root() {
  need_apt mmdebstrap buildah jq
  local key
  key=$(printf '%s' "$BASE_PACKAGES" | sha256sum | cut -c1-12)
  BASE_TAR=$CACHE/image-base-bookworm-$key.tar
  BASE_PACKAGES_JSON=$CACHE/image-base-bookworm-$key.packages.json
  [ -f "$BASE_TAR" ] && [ -f "$BASE_PACKAGES_JSON" ] && return 0
  log "making the base root (mmdebstrap: $BASE_PACKAGES)"
  local work
  work=$(mktemp -d)
  # "extract" unpacks the packages without running their scripts: no shell, no dpkg,
  # no package manager in the image.
  mmdebstrap --quiet --variant=extract --include="${BASE_PACKAGES// /,}" \
    --extract-hook='for f in "$1"/var/cache/apt/archives/*.deb; do dpkg-deb --show --showformat="\${Package}\t\${Version}\t\${Architecture}\n" "$f"; done >"$1/../packages.tsv"' \
    bookworm "$work/root" >/dev/null
  # What update-ca-certificates would write: the Mozilla bundle Debian ships.
  mkdir -p "$work/root/etc/ssl/certs"
  cat "$work/root"/usr/share/ca-certificates/mozilla/*.crt >"$work/root/etc/ssl/certs/ca-certificates.crt"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nserre:x:65532:65532:serre:/nonexistent:/sbin/nologin\n' >"$work/root/etc/passwd"
  printf 'root:x:0:\nserre:x:65532:\n' >"$work/root/etc/group"
  mkdir -p "$work/root/tmp" && chmod 1777 "$work/root/tmp"
  # Documentation goes, but for each package's copyright and licence file.
  find "$work/root/usr/share/doc" -type f ! -name copyright -delete
  rm -rf "$work/root"/usr/share/man "$work/root"/usr/share/locale
  # The packages and versions, for the SBOM.
  jq -R -s 'split("\n") | map(select(length > 0) | split("\t") | {name: .[0], version: .[1], arch: .[2]})' \
    "$work/packages.tsv" >"$BASE_PACKAGES_JSON.tmp"
  tar -C "$work/root" -cf "$BASE_TAR.tmp" .
  rm -rf "$work"
  mv "$BASE_PACKAGES_JSON.tmp" "$BASE_PACKAGES_JSON"
  mv "$BASE_TAR.tmp" "$BASE_TAR"
}

# --- SBOM: cargo-cyclonedx for the crate, plus the base root's Debian packages ------------
ensure_cyclonedx() {
  CYCLONEDX=$CACHE/tools/cargo-cyclonedx-$CYCLONEDX_VERSION/bin/cargo-cyclonedx
  [ -x "$CYCLONEDX" ] && return 0
  log "installing cargo-cyclonedx $CYCLONEDX_VERSION (once)"
  CARGO_TARGET_DIR=$CACHE/tools/target cargo install --locked --quiet \
    --root "$CACHE/tools/cargo-cyclonedx-$CYCLONEDX_VERSION" --version "$CYCLONEDX_VERSION" cargo-cyclonedx
  rm -rf "$CACHE/tools/target"
}

sbom() { # PACKAGE(crate) NAME -> $OUT/NAME.cdx.json
  local crate=$1 name=$2 manifest
  manifest=$(cargo metadata --no-deps --format-version 1 |
    jq -r --arg c "$crate" '.packages[] | select(.name == $c) | .manifest_path')
  local dir
  dir=$(dirname "$manifest")
  "$CYCLONEDX" cyclonedx --manifest-path "$manifest" --format json --spec-version 1.5 \
    --override-filename "$crate.cdx" >/dev/null
  jq --slurpfile deb "$BASE_PACKAGES_JSON" --arg tag "$TAG" --arg image "$PREFIX/$name" '
    .metadata.component.name = $image | .metadata.component.version = $tag |
    .components += [$deb[0][] | {
      type: "library", name: .name, version: .version,
      purl: ("pkg:deb/debian/" + .name + "@" + .version + "?arch=" + .arch + "&distro=debian-12"),
      "bom-ref": ("pkg:deb/debian/" + .name + "@" + .version)
    }]' "$dir/$crate.cdx.json" >"$OUT/$name.cdx.json"
  # cargo-cyclonedx writes one file per workspace member: remove them all.
  cargo metadata --no-deps --format-version 1 | jq -r '.packages[].manifest_path' |
    while read -r m; do rm -f "$(dirname "$m")/$crate.cdx.json"; done
}

# --- one image --------------------------------------------------------------------------
image() { # NAME CRATE BINARY [extra buildah config args...]
  local name=$1 crate=$2 binary=$3
  shift 3
  local ref=$PREFIX/$name:$TAG ctr
  sbom "$crate" "$name"
  ctr=$("${BUILDAH[@]}" from --pull=false "localhost/serre-image-base:$TAG")
  "${BUILDAH[@]}" copy --chmod 0755 "$ctr" "$TARGET_DIR/$PROFILE_DIR/$binary" "/usr/local/bin/$binary" >/dev/null
  "${BUILDAH[@]}" copy "$ctr" "$OUT/$name.cdx.json" /usr/share/serre/sbom.cdx.json >/dev/null
  "${BUILDAH[@]}" config --entrypoint "[\"/usr/local/bin/$binary\"]" --cmd '[]' --user 65532:65532 \
    --workingdir / --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    --label org.opencontainers.image.title="$name" \
    --label org.opencontainers.image.version="$TAG" \
    --label org.opencontainers.image.licenses=EUPL-1.2 \
    --label org.opencontainers.image.source="https://forge.metropolegrandparis.fr/serre/serre" \
    --label org.opencontainers.image.revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
    --label fr.metropolegrandparis.serre.sbom=/usr/share/serre/sbom.cdx.json \
    "$@" "$ctr"
  "${BUILDAH[@]}" commit -q --rm --format oci "$ctr" "$ref" >/dev/null
  log "built $ref"
}

build_binaries() { # IMAGE... (each image's crate and binary have its name)
  local args=() name
  for name in "$@"; do args+=(-p "$name" --bin "$name"); done
  log "building the binaries $* (cargo profile $PROFILE)"
  cargo build --profile "$PROFILE" "${args[@]}"
}

build() {
  local wanted=${*:-$IMAGES} name
  for name in $wanted; do
    case " $IMAGES " in *" $name "*) ;; *) log "unknown image '$name' (known: $IMAGES)"; exit 2 ;; esac
  done
  mkdir -p "$OUT"
  base_root
  ensure_cyclonedx
  # shellcheck disable=SC2086 # $wanted is a list of names
  build_binaries $wanted
  # The base root as an image of its own, imported once per build.
  local base_ctr
  base_ctr=$("${BUILDAH[@]}" from scratch)
  local mnt
  mnt=$("${BUILDAH[@]}" mount "$base_ctr")
  tar -C "$mnt" -xf "$BASE_TAR"
  "${BUILDAH[@]}" umount "$base_ctr" >/dev/null
  "${BUILDAH[@]}" commit -q --rm --format oci "$base_ctr" "localhost/serre-image-base:$TAG" >/dev/null
  local name
  for name in $wanted; do
    case $name in
      serre-operator) image serre-operator serre-operator serre-operator ;;
      serre-api)
        image serre-api serre-api serre-api --env SERRE_API_POLICIES_DIR=/etc/serre/policies
        # The Cedar policies the gateway loads by default.
        local ctr
        ctr=$("${BUILDAH[@]}" from --pull=false "$PREFIX/serre-api:$TAG")
        "${BUILDAH[@]}" copy "$ctr" policies /etc/serre/policies >/dev/null
        "${BUILDAH[@]}" commit -q --rm --format oci "$ctr" "$PREFIX/serre-api:$TAG" >/dev/null
        ;;
      serre-example-model) image serre-example-model serre-example-model serre-example-model ;;
      *) log "unknown image '$name' (known: $IMAGES)"; exit 2 ;;
    esac
  done
  # Each build leaves the previous images of the same names dangling; with the vfs
  # driver each is a full copy of its root (they filled a 250 GB disk over a day).
  "${BUILDAH[@]}" rmi --prune >/dev/null 2>&1 || true
}

push() {
  local registry=${1:?usage: images.sh push REGISTRY [IMAGE...]}
  shift
  build "$@"
  local tls=${SERRE_PUSH_TLS_VERIFY:-}
  if [ -z "$tls" ]; then
    case $registry in 127.0.0.1:* | localhost:* | "$SERRE_HOST_ADDR":*) tls=false ;; *) tls=true ;; esac
  fi
  local name digest
  for name in ${*:-$IMAGES}; do
    "${BUILDAH[@]}" push -q --tls-verify="$tls" --digestfile "$OUT/$name.digest" \
      "$PREFIX/$name:$TAG" "docker://$registry/serre/$name:$TAG"
    digest=$(cat "$OUT/$name.digest")
    log "pushed $registry/serre/$name:$TAG@$digest"
  done
}

case "${1:-}" in
  build) shift; build "$@" ;;
  push) shift; push "$@" ;;
  list) echo "$IMAGES" ;;
  *) echo "usage: $0 build [IMAGE...] | push REGISTRY [IMAGE...] | list" >&2; exit 2 ;;
esac
