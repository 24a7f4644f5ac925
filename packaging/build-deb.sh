#!/usr/bin/env bash
# Builds the Debian package of assetpool from a release binary:
#
#   packaging/build-deb.sh BINARY OUT_DIR
#
# Prints the path of the .deb. The package holds /usr/bin/assetpool, the
# systemd unit, the commented config file (/etc/assetpool/assetpool.toml, a
# conffile) and the documentation; its maintainer scripts create the
# `assetpool` system user, /var/lib/assetpool (0700) and the key-encryption
# key of the signing keys (/etc/assetpool/signing-key.kek, assetpool 0600).
set -euo pipefail
cd "$(dirname "$0")/.."

binary="${1:?usage: build-deb.sh BINARY OUT_DIR}"
out="${2:?usage: build-deb.sh BINARY OUT_DIR}"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)"
arch="$(dpkg --print-architecture)"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT

install -D -m 0755 "$binary" "$stage/usr/bin/assetpool"
# Debug information stays out of the package (the release profile strips it;
# this catches a binary built otherwise).
strip --strip-debug "$stage/usr/bin/assetpool"
install -D -m 0644 packaging/debian/assetpool.service "$stage/lib/systemd/system/assetpool.service"
install -D -m 0640 packaging/assetpool.toml "$stage/etc/assetpool/assetpool.toml"
install -D -m 0644 LICENSE "$stage/usr/share/doc/assetpool/copyright"
install -D -m 0644 README.md "$stage/usr/share/doc/assetpool/README.md"
install -D -m 0644 docs/DEPLOYMENT.md "$stage/usr/share/doc/assetpool/DEPLOYMENT.md"
gzip -9n -c CHANGELOG.md > "$stage/usr/share/doc/assetpool/changelog.gz"

mkdir -p "$stage/DEBIAN"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$stage/DEBIAN/"
echo "/etc/assetpool/assetpool.toml" > "$stage/DEBIAN/conffiles"
size_kib="$(du -sk --exclude=DEBIAN "$stage" | cut -f1)"
cat > "$stage/DEBIAN/control" <<CONTROL
Package: assetpool
Version: $version
Architecture: $arch
Maintainer: assetpool maintainers <maintainers@example.invalid>
Installed-Size: $size_kib
Depends: libc6 (>= 2.34), adduser
Section: net
Priority: optional
Homepage: https://example.invalid/assetpool
Description: authentication service for APIs using API keys and bearer tokens
 assetpool checks the API key (x-api-key) and the short-lived bearer token of
 every request to a protected API, issues tokens through a username and
 password login (OAuth 2.0 password grant), and gives support staff keys,
 users, revocation, usage, alerts and an audit log. SQLite on one machine,
 PostgreSQL on many.
CONTROL

mkdir -p "$out"
deb="$out/assetpool_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$stage" "$deb" >/dev/null
echo "$deb"
