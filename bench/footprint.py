#!/usr/bin/env python3
"""Issue 26's table, side by side in one run: tini-static, flush-manager as
built now (target/static/flush-manager) and, if FM_BEFORE names another
build (e.g. the previous release's static binary), that one too. Also the
glob matcher's worst case (8 and 16 `*` on long names) through the real
binary. Prints a Markdown table and puts it in bench/RESULTS.md between its
`footprint-table` markers.

    FM_BEFORE=/path/to/old/flush-manager python3 bench/footprint.py [--quick]
Needs root (PID namespaces) and what bench/run.sh builds.
"""
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time

import bench as b
from report import put_table

BEFORE = os.environ.get("FM_BEFORE")
inits = {"tini-static": b.INITS["tini-static"]} if "tini-static" in b.INITS else {}
if BEFORE:
    inits["flush-manager before"] = [BEFORE, "--config", b.CONF, "--"]
inits["flush-manager"] = b.INITS["flush-manager"]
# The same build with nothing watched: what the watch itself costs (threads,
# memory, and at exit the kernel's teardown of the inotify instance).
inits["flush-manager, no watch"] = [b.OURS, "--config", "", "--"]
b.INITS = inits
b.results = {n: {} for n in inits}
OURS = {n: argv[0] for n, argv in inits.items() if n in ("flush-manager before", "flush-manager")}


def bench_exit():
    """The child exits → the init has reaped it and is gone itself (what a
    container runtime waits for). The child is `sh -c 'read x'`, released
    by a byte on its stdin."""
    runs = 20 if b.QUICK else 60
    t = {n: [] for n in inits}
    for _ in range(runs):
        for n, argv in b.shuffled(inits):
            p = subprocess.Popen(argv + ["/bin/sh", "-c", "read x"], env=b.ENV, stdin=subprocess.PIPE,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            b.wait_child(p.pid)
            time.sleep(0.05)
            t0 = time.perf_counter()
            p.stdin.write(b"x\n")
            p.stdin.flush()
            p.wait()
            t[n].append((time.perf_counter() - t0) * 1e3)
    for n in inits:
        b.results[n]["exit_ms"] = b.med(t[n])
        b.results[n]["exit_p90"] = b.pct(t[n], 0.9)


def bench_busy():
    """3000 queued real-time signals to the init (PID 1) while three busy
    loops share the child's group → the child has counted them all (ms, less
    the helper's 1 s of quiet before it reports). An init that gives its CPU
    away after each forward (sched_yield) would hand the busy loops a time
    slice per signal."""
    sig, total = 40, 3000
    hogs = "for i in 1 2 3; do (while :; do :; done) & done; exec \"$0\" rtcount " + str(sig)
    took = {n: [] for n in inits}
    for _ in range(1 if b.QUICK else 3):
        for n, argv in b.shuffled(inits):
            r, w = os.pipe()
            p, pid = b.ns_start(argv + ["/bin/sh", "-c", hogs, b.HELPERS], fd=w)
            os.close(w)
            select.select([r], [], [], 10)
            os.read(r, 1)
            t0 = time.perf_counter()
            for _ in range(total):
                os.kill(pid, sig)
            ready, _, _ = select.select([r], [], [], 60)
            ms = (time.perf_counter() - t0 - 1.0) * 1e3
            got = int(os.read(r, 32).split()[0]) if ready else 0
            b.stop(p)
            os.close(r)
            took[n].append(ms if got == total else float("inf"))
    for n in inits:
        m = b.med(took[n])
        b.results[n]["busy_ms"] = m if m != float("inf") else None


def glob_case(binary, stars, length, limit=10.0):
    """A file whose name is `length` a's appears in a watched directory whose
    first rule (`*a` × stars, then `b*`: no literal end for the prefilter to
    turn the name away with) can never match it, the second restarts: time
    from the file's creation to the restarted child (its start after the
    rule was found), or None past `limit` seconds."""
    d = tempfile.mkdtemp(prefix="fm-glob-")
    with open(os.path.join(d, "app.conf"), "w") as f:
        f.write("x\n")
    r, w = os.pipe()
    p = subprocess.Popen([binary, "--config", d, "--debounce", "0", "--poll-interval", "0",
                          "--on-change", "*a" * stars + "b*=none", "--on-change", "*=restart",
                          "--", b.HELPERS, "started"],
                         env=dict(b.ENV, HELPER_FD=str(w)), pass_fds=(w,),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w)
    took = None
    if select.select([r], [], [], 10)[0]:
        os.read(r, 1)
        time.sleep(0.3)
        t0 = time.perf_counter()
        with open(os.path.join(d, "a" * length), "w") as f:
            f.write("x\n")
        if select.select([r], [], [], limit)[0]:
            os.read(r, 1)
            took = (time.perf_counter() - t0) * 1e3
    b.stop(p)
    os.close(r)
    shutil.rmtree(d, ignore_errors=True)
    return took


def main():
    for step in (b.bench_size, b.bench_idle, b.bench_start, b.bench_signal, bench_exit, bench_busy):
        print(f"footprint: {step.__name__} …", file=sys.stderr, flush=True)
        step()
    res = b.results
    names = list(inits)
    base = res.get("tini-static", {})

    def cell(n, key, spec):
        v = res[n].get(key)
        s = b.fmt(v, spec)
        ref = base.get(key)
        if n != "tini-static" and v is not None and ref:
            s += f" (×{v / ref:.2f})"
        return s

    rows = [
        ("static binary (bytes)", "size", "{:,.0f}"),
        ("idle threads", "threads", "{:.0f}"),
        ("idle anonymous RSS (KiB, RssAnon)", "anon", "{:.0f}"),
        ("idle RSS (KiB)", "rss", "{:.0f}"),
        ("init exec → child running (ms)", "start_ms", "{:.2f}"),
        ("signal → child p50 (µs)", "sig_p50", "{:.0f}"),
        ("signal → child p99 (µs)", "sig_p99", "{:.0f}"),
        ("child exit → reaped, init gone (ms, median)", "exit_ms", "{:.2f}"),
        ("child exit → reaped, init gone (ms, p90)", "exit_p90", "{:.2f}"),
        ("3000 real-time signals, 3 busy loops in the child's group → all counted (ms)", "busy_ms", "{:.0f}"),
    ]
    out = ["| figure | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for label, key, spec in rows:
        out.append(f"| {label} | " + " | ".join(cell(n, key, spec) for n in names) + " |")
    out += ["", "| glob: a name of N a's against `*a`×K then `b*` (never matches), file created → child restarted (ms) | "
            + " | ".join(OURS) + " |", "|---|" + "---|" * len(OURS)]
    for stars, length in ((8, 40), (8, 200), (16, 40), (16, 200)):
        print(f"footprint: glob {stars} stars, {length} chars …", file=sys.stderr, flush=True)
        cells = []
        for n, binary in OURS.items():
            took = glob_case(binary, stars, length)
            cells.append("> 10,000 (gave up)" if took is None else f"{took:.1f}")
        out.append(f"| K = {stars}, N = {length} | " + " | ".join(cells) + " |")
    table = "\n".join(out)
    print(table)
    put_table("footprint-table", table)
    shutil.rmtree(b.CONF_DIR, ignore_errors=True)


if __name__ == "__main__":
    main()
