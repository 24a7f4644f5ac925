#!/usr/bin/env bash
# Builds the OCI image of assetpool with podman, FROM scratch:
#
#   packaging/build-image.sh BINARY [TAG]
#
# TAG defaults to localhost/assetpool:VERSION. The root filesystem holds the
# binary (debug information stripped), the C libraries `ldd` names for it,
# /etc/passwd and /etc/group with the `assetpool` user (65532), the CA
# certificates of this machine (TLS to PostgreSQL and webhooks), /tmp, and
# the data volume /var/lib/assetpool owned by that user (mode 0700).
# PODMAN_FLAGS (default: --storage-driver vfs) are given to every podman call.
set -euo pipefail
cd "$(dirname "$0")/.."

binary="${1:?usage: build-image.sh BINARY [TAG]}"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)"
tag="${2:-localhost/assetpool:$version}"
read -r -a podman_flags <<< "${PODMAN_FLAGS:---storage-driver vfs}"
context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT

root="$context/rootfs"
install -D -m 0755 "$binary" "$root/usr/bin/assetpool"
strip --strip-debug "$root/usr/bin/assetpool"
# The dynamic loader and every library the binary links, at their paths.
for library in $(ldd "$binary" | grep -o '/[^ ]*'); do
  install -D -m 0755 "$(readlink -f "$library")" "$root$library"
done
mkdir -p "$root/etc" "$root/tmp"
chmod 1777 "$root/tmp"
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nassetpool:x:65532:65532:assetpool:/var/lib/assetpool:/usr/sbin/nologin\n' > "$root/etc/passwd"
printf 'root:x:0:\nassetpool:x:65532:\n' > "$root/etc/group"
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
fi
install -D -m 0644 LICENSE "$root/usr/share/doc/assetpool/LICENSE"
mkdir -p "$context/state" && mkdir -m 0700 "$context/state/assetpool"

podman "${podman_flags[@]}" build --isolation chroot --format docker --quiet \
  --label "org.opencontainers.image.title=assetpool" \
  --label "org.opencontainers.image.version=$version" \
  --label "org.opencontainers.image.licenses=Apache-2.0" \
  -t "$tag" -f packaging/image/Containerfile "$context" >/dev/null
echo "$tag"
