#!/bin/sh
# Builds a fully static flush-manager into target/static/flush-manager.
# musl when its Rust target can be installed (smallest: no libc to load),
# else glibc with +crt-static. The Dockerfile and .ci/run both use this.
set -eu
cd "$(dirname "$0")/.."
arch=$(uname -m)
musl="$arch-unknown-linux-musl"
if rustup target list --installed 2>/dev/null | grep -qx "$musl" || rustup target add "$musl" >/dev/null 2>&1; then
    # Footprint (see bench/RESULTS.md): a plain static executable (no PIE,
    # no relocations to apply at start); no unwind tables, as panic =
    # "abort" never unwinds (docker/no-unwind-tables.ld); no page padding
    # between code and data.
    RUSTFLAGS="-C relocation-model=static -C force-unwind-tables=no \
        -C link-arg=-Wl,-T,$(pwd)/docker/no-unwind-tables.ld -C link-arg=-Wl,--no-eh-frame-hdr \
        -C link-arg=-Wl,-z,noseparate-code" \
        cargo build --release --locked --target "$musl"
    out="target/$musl/release/flush-manager"
else
    echo "build-static: the $musl target is unavailable; building glibc +crt-static" >&2
    gnu="$arch-unknown-linux-gnu"
    RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --target "$gnu"
    out="target/$gnu/release/flush-manager"
fi
mkdir -p target/static
# Copy, then rename: replacing a binary that is running stays possible.
cp "$out" target/static/flush-manager.new
mv -f target/static/flush-manager.new target/static/flush-manager
echo "build-static: $(pwd)/target/static/flush-manager ($(wc -c < target/static/flush-manager) bytes)"
