#!/usr/bin/env bash
# One command for the whole benchmark: installs the peer inits from Debian's
# packages if missing, builds our static binary and the C helper children,
# then measures everything side by side and writes bench/RESULTS.md.
#   bench/run.sh           full run (about 5 minutes; bench/scaling.py last)
#   bench/run.sh --quick   fewer repetitions (a smoke test)
#   FM_BEFORE=old/flush-manager bench/run.sh   footprint.py compares with it
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "bench/run.sh: needs root (PID namespaces, apt-get)" >&2; exit 2; fi
missing=()
[ -x /usr/bin/tini-static ] || missing+=(tini)
[ -x /usr/bin/dumb-init ] || missing+=(dumb-init)
[ -x /usr/bin/catatonit ] || missing+=(catatonit)
command -v gcc >/dev/null || missing+=(gcc)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
sh docker/build-static.sh
mkdir -p target/bench
gcc -O2 -o target/bench/helpers bench/helpers.c
python3 bench/bench.py "$@"
# Issue 26's table (printed, not written): FM_BEFORE=/path/to/an/older/build
# adds that build's column.
python3 bench/footprint.py "$@"
exec python3 bench/scaling.py "$@"
