#!/bin/sh
# Release artifacts for every architecture, from an x86_64 Debian machine:
#   sh docker/release.sh
# builds the static binaries (docker/build-static.sh) and writes
#   dist/flush-manager-<version>-<arch>.tar.gz   (binary, LICENSE, README.md)
#   dist/SHA256SUMS
# Archives are reproducible: sorted names, zero times and owners, gzip -n.
set -eu
cd "$(dirname "$0")/.."
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
arches="x86_64 aarch64 armv7"
# shellcheck disable=SC2086
sh docker/build-static.sh $arches
rm -rf dist
mkdir -p dist
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
for arch in $arches; do
    name="flush-manager-$version-$arch"
    mkdir "$stage/$name"
    cp "target/static/$arch/flush-manager" LICENSE README.md "$stage/$name/"
    chmod 0755 "$stage/$name/flush-manager"
    tar -C "$stage" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - "$name" \
        | gzip -n -9 > "dist/$name.tar.gz"
done
(cd dist && sha256sum -- *.tar.gz > SHA256SUMS)
echo "release: $(pwd)/dist"
cat dist/SHA256SUMS
