#!/bin/sh
# PID-1 smoke test of one flush-manager binary, of any architecture this
# machine can run (natively, or through qemu-user and binfmt_misc):
#   sh docker/smoke.sh target/static/aarch64/flush-manager
# As PID 1 of a fresh PID namespace (unshare, as root): the child's exit code
# is passed on, orphans are reaped, SIGTERM reaches the child, and a config
# change restarts it. Prints one line per check; exits non-zero on a failure.
set -eu
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
work=$(mktemp -d)
pids=""
cleanup() {
    for p in $pids; do kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
ns="unshare --pid --fork --mount-proc"
failed=0
check() { # name, then a command that must succeed
    name=$1
    shift
    if "$@"; then echo "smoke ok: $name"; else echo "smoke FAILED: $name" >&2; failed=1; fi
}
# Polls (every 0.1 s, up to 30 s) until the command succeeds.
until_true() {
    i=0
    while ! "$@"; do
        i=$((i + 1))
        [ "$i" -lt 300 ] || return 1
        sleep 0.1
    done
}
# The first child of a process.
child_of() { cat "/proc/$1/task/$1/children" 2>/dev/null | awk '{print $1}'; }
# (Conditions are functions: until_true re-runs them, arguments are fixed.)
has_child() { test -n "$(child_of "$1")"; }
starts_are() { test "$(grep -c start "$work/starts" 2>/dev/null)" = "$1"; }
# The manager below a background job: the descendant that is PID 1 of its
# namespace (the shell may have forked once more before unshare).
manager_of() {
    p=$1
    while [ -n "$p" ]; do
        if awk '/^NSpid:/ { exit !($NF == 1) }' "/proc/$p/status" 2>/dev/null; then
            echo "$p"
            return 0
        fi
        p=$(child_of "$p")
    done
    return 1
}

exit_code() {
    set +e
    $ns "$bin" --config= -- /bin/sh -c 'exit 7' 2>"$work/exit.log"
    code=$?
    set -e
    [ "$code" = 7 ]
}
check "exit code passed through" exit_code

reaps() {
    # 50 orphans exit under PID 1; the child then counts zombies left.
    $ns "$bin" --config= -- /bin/sh -c '
        for i in $(seq 50); do (sleep 0.2 &) ; done
        sleep 3
        n=$(grep -l "^State:.*Z" /proc/[0-9]*/status 2>/dev/null | wc -l)
        echo "zombies: $n"
        [ "$n" = 0 ]' >"$work/reap.log" 2>&1
}
check "orphans reaped" reaps

forwards_term() {
    $ns "$bin" --config= -- /bin/sh -c "trap 'echo got-term > $work/term; exit 0' TERM; while :; do sleep 0.1; done" \
        2>"$work/term.log" &
    outer=$!
    pids="$pids $outer"
    until_true manager_of "$outer" >/dev/null || return 1
    manager=$(manager_of "$outer")
    pids="$pids $manager"
    until_true has_child "$manager" || return 1
    kill -TERM "$manager"
    set +e
    wait "$outer"
    code=$?
    set -e
    [ "$code" = 0 ] && grep -q got-term "$work/term"
}
check "SIGTERM reaches the child" forwards_term

restarts_on_change() {
    echo v1 > "$work/app.conf"
    $ns "$bin" --config="$work/app.conf" --debounce=100ms -- /bin/sh -c \
        "echo start >> $work/starts; trap 'exit 0' TERM; while :; do sleep 0.1; done" 2>"$work/restart.log" &
    outer=$!
    pids="$pids $outer"
    until_true grep -q start "$work/starts" || return 1
    until_true grep -q "Watching directory" "$work/restart.log" || return 1
    echo v2 > "$work/app.conf"
    until_true starts_are 2 || return 1
    manager=$(manager_of "$outer")
    pids="$pids $manager"
    kill -TERM "$manager"
    wait "$outer"
}
check "config change restarts the child" restarts_on_change

if [ "$failed" != 0 ]; then
    for f in "$work"/*.log; do echo "--- $f" >&2; cat "$f" >&2; done
    exit 1
fi
echo "smoke: $bin passed"
