#!/bin/sh
# Builds fully static flush-manager binaries, from an x86_64 Debian machine:
#   sh docker/build-static.sh [ARCH...]    ARCH: x86_64 (amd64), aarch64 (arm64), armv7 (arm)
# No argument: this machine's own architecture. Output:
#   target/static/<arch>/flush-manager, and target/static/flush-manager for
#   this machine's own (what the Dockerfile, .ci/run and the tests use).
# Installs what it needs: the rustup targets, and Debian's cross linkers.
#
# x86_64 and aarch64 are musl (smallest: no libc to load); armv7 is glibc
# with +crt-static, as rustup serves no armv7 musl target here. musl builds
# carry the size flags (see bench/RESULTS.md): a plain static executable (no
# PIE, no relocations to apply at start); no unwind tables, as panic =
# "abort" never unwinds (docker/no-unwind-tables*.ld); no page padding
# between code and data. If the native musl target cannot be had, the
# native build falls back to glibc +crt-static.
set -eu
cd "$(dirname "$0")/.."
native=$(uname -m)
[ $# -gt 0 ] || set -- "$native"

size_flags="-C relocation-model=static -C force-unwind-tables=no \
 -C link-arg=-Wl,-T,$(pwd)/docker/no-unwind-tables.ld -C link-arg=-Wl,--no-eh-frame-hdr \
 -C link-arg=-Wl,-z,noseparate-code"
# Where the toolchain ships lld (rustup's gcc-ld wrapper around rust-lld), a
# native musl build links with it: identical functions folded into one
# (--icf=all; Rust gives no function a significant address) and duplicate
# read-only strings merged, about 23 KB less than GNU ld (bench/RESULTS.md).
gcc_ld="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/gcc-ld"
# Panic locations name their source file: dependencies' under the registry
# (a home directory and an index hash) shortened to name-version/path.
remap="--remap-path-prefix=${CARGO_HOME:-${HOME:-/root}/.cargo}/registry/src="
size_flags="$size_flags $remap"
lld_flags="$remap -C relocation-model=static -C force-unwind-tables=no \
 -C link-arg=-B$gcc_ld -C link-arg=-fuse-ld=lld -C link-arg=-Wl,--icf=all \
 -C link-arg=-Wl,-T,$(pwd)/docker/no-unwind-tables-lld.ld -C link-arg=-Wl,--no-eh-frame-hdr \
 -C link-arg=-Wl,-z,noseparate-code"

# Debian packages for a missing command.
need() {
    command -v "$1" >/dev/null 2>&1 && return 0
    shift
    echo "build-static: installing $*" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

has_target() {
    rustup target list --installed 2>/dev/null | grep -qx "$1" || rustup target add "$1" >/dev/null 2>&1
}

for want in "$@"; do
    linker=""
    case "$want" in
        x86_64 | amd64)
            arch=x86_64 target=x86_64-unknown-linux-musl flags=$size_flags ;;
        aarch64 | arm64)
            arch=aarch64 target=aarch64-unknown-linux-musl flags=$size_flags
            [ "$native" = aarch64 ] || { linker=aarch64-linux-gnu-gcc; need "$linker" gcc-aarch64-linux-gnu; } ;;
        armv7 | arm | armv7l)
            arch=armv7 target=armv7-unknown-linux-gnueabihf flags="-C target-feature=+crt-static"
            [ "$native" = armv7l ] || { linker=arm-linux-gnueabihf-gcc; need "$linker" gcc-arm-linux-gnueabihf libc6-dev-armhf-cross; } ;;
        *)
            echo "build-static: unknown architecture '$want' (x86_64, aarch64, armv7)" >&2
            exit 2 ;;
    esac
    if ! has_target "$target"; then
        if [ "$arch" = "$native" ] && [ "$arch" = x86_64 ]; then
            echo "build-static: the $target target is unavailable; building glibc +crt-static" >&2
            target=x86_64-unknown-linux-gnu flags="-C target-feature=+crt-static"
        else
            echo "build-static: cannot install the Rust target $target (rustup target add $target)" >&2
            exit 1
        fi
    fi
    if [ -z "$linker" ] && [ -x "$gcc_ld/ld.lld" ] && [ "${target%-musl}" != "$target" ]; then
        flags=$lld_flags
    fi
    var=$(echo "$target" | tr 'a-z-' 'A-Z_')
    if [ -n "$linker" ]; then
        env "CARGO_TARGET_${var}_LINKER=$linker" RUSTFLAGS="$flags" \
            cargo build --release --locked --target "$target"
    else
        RUSTFLAGS="$flags" cargo build --release --locked --target "$target"
    fi
    out="target/$target/release/flush-manager"
    mkdir -p "target/static/$arch"
    # Copy, then rename: replacing a binary that is running stays possible.
    cp "$out" "target/static/$arch/flush-manager.new"
    mv -f "target/static/$arch/flush-manager.new" "target/static/$arch/flush-manager"
    case "$native" in armv7l) native_arch=armv7 ;; *) native_arch=$native ;; esac
    if [ "$arch" = "$native_arch" ]; then
        cp "$out" target/static/flush-manager.new
        mv -f target/static/flush-manager.new target/static/flush-manager
    fi
    echo "build-static: $(pwd)/target/static/$arch/flush-manager ($(wc -c < "target/static/$arch/flush-manager") bytes, $target)"
done
