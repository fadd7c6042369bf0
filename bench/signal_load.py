#!/usr/bin/env python3
"""Signal-forwarding latency while the manager works on its config.

The loop that forwards signals also looks at the config: a look that walks
or hashes a lot delays every signal that arrives meanwhile. This measures
SIGUSR1 sent to the manager (PID 1 of its own namespace) → the child's
handler writing a byte (bench/helpers.c `sigecho`), p50 / p99 / max, for:

- idle: a one-file config directory, default polling;
- 100,000 files in a watched directory, polling on (default 5 s interval;
  the files aged past the stat cache's 2 s doubt, as an untouched config is);
- a 2 GB file being rewritten in place (a pass every few seconds);
- a 10,000-key ConfigMap swapped by the kubelet's writer every 2 s.

A change runs `--reload-command /bin/true` instead of restarting, so one
child answers for the whole window; the config work is the same.

A signal goes out every 10 ms, each after the previous one was answered.
During a stall of L ms the signals that would have been sent in it (every
10 ms) would all wait for its end: they are counted too, at L-10, L-20, …
ms (standard signals sent during one stall are coalesced, so sending them
for real would measure nothing more). "stalled" is the share of the window
spent waiting more than 10 ms for an answer.

Run as root, after `cargo build --release` (or docker/build-static.sh:
target/static/flush-manager is preferred when present; FM_BIN overrides).
Takes about 3 minutes and needs 2.1 GB free under $TMPDIR. Prints a table;
with --write, also puts it into bench/RESULTS.md between the
`signal-load` markers (bench/run.sh rewrites that file: run this after it).
"""
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from procfs import cpu_ns
from report import put_table
from scaling import kubelet_prepare, keys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STATIC = os.path.join(ROOT, "target/static/flush-manager")
OURS = os.environ.get("FM_BIN") or (STATIC if os.path.exists(STATIC) else os.path.join(ROOT, "target/release/flush-manager"))
HELPERS = os.path.join(ROOT, "target/bench/helpers")
NS = ["unshare", "--pid", "--fork", "--mount-proc"]
ENV = dict(os.environ, FLUSH_MANAGER_LOG="warn")
WINDOW = 20.0  # seconds of signals per case
EVERY_MS = 10.0
# The stat cache trusts a file only once it is older than this (see scaling.py).
AGE = 2.5


def helpers():
    if not os.path.exists(HELPERS):
        os.makedirs(os.path.dirname(HELPERS), exist_ok=True)
        subprocess.run(["gcc", "-O2", "-o", HELPERS, os.path.join(ROOT, "bench/helpers.c")], check=True)
    return HELPERS


class Manager:
    """Ours as PID 1 of a fresh PID namespace, watching `config`, with the
    sigecho child writing to our pipe."""

    def __init__(self, config, extra):
        self.r, w = os.pipe()
        argv = NS + [OURS, "--config", config, "--debounce", "100ms", "--reload-command", "/bin/true"] + extra
        argv += ["--", helpers(), "sigecho"]
        self.p = subprocess.Popen(argv, env=dict(ENV, HELPER_FD=str(w)), pass_fds=(w,),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(w)
        self.pid = 0
        for _ in range(6000):
            try:
                with open(f"/proc/{self.p.pid}/task/{self.p.pid}/children") as f:
                    kids = f.read().split()
                if kids:
                    self.pid = int(kids[0])
                    break
            except OSError:
                pass
            time.sleep(0.01)
        # The child says "r" once its handler is in place (after the first
        # look at the whole config: that can take seconds).
        ready, _, _ = select.select([self.r], [], [], 300)
        if not ready or os.read(self.r, 1) != b"r":
            self.stop()
            raise SystemExit("signal_load: the child never started")

    def settle(self):
        """Waits until a signal is answered within 5 ms twice in a row: the
        catch-up look after the watcher started is over."""
        quick = 0
        deadline = time.time() + 300
        while quick < 2 and time.time() < deadline:
            t0 = time.perf_counter()
            os.kill(self.pid, signal.SIGUSR1)
            select.select([self.r], [], [], 300)
            os.read(self.r, 64)
            quick = quick + 1 if time.perf_counter() - t0 < 0.005 else 0
            time.sleep(0.05)

    def measure(self, secs):
        """(latencies in ms, those counted for a signal every 10 ms, lost,
        stalled share, manager CPU share of one core)."""
        lat, counted, lost, stalled = [], [], 0, 0.0
        c0, w0 = cpu_ns(self.pid), time.perf_counter()
        end = w0 + secs
        while time.perf_counter() < end:
            t0 = time.perf_counter_ns()
            os.kill(self.pid, signal.SIGUSR1)
            ready, _, _ = select.select([self.r], [], [], 60)
            if not ready:
                lost += 1
                continue
            os.read(self.r, 64)
            ms = (time.perf_counter_ns() - t0) / 1e6
            lat.append(ms)
            counted.append(ms)
            k = ms - EVERY_MS
            if k > 0:
                stalled += ms / 1e3
            while k > 0:
                counted.append(k)
                k -= EVERY_MS
            time.sleep(EVERY_MS / 1e3)
        wall = time.perf_counter() - w0
        cpu = (cpu_ns(self.pid) - c0) / 1e9 / wall
        return lat, counted, lost, stalled / wall, cpu

    def stop(self):
        try:
            os.kill(self.pid, signal.SIGTERM)
        except OSError:
            pass
        try:
            self.p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            for pid in (self.pid, self.p.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            self.p.wait()
        os.close(self.r)


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def run_case(config, extra, load=None):
    """Starts the manager, lets it settle, runs `load` (a function taking a
    stop Event) in a thread during the window, measures."""
    m = Manager(config, extra)
    m.settle()
    stop = threading.Event()
    t = threading.Thread(target=load, args=(stop,)) if load else None
    if t:
        t.start()
    try:
        return m.measure(WINDOW)
    finally:
        stop.set()
        if t:
            t.join()
        m.stop()


def idle(tmp):
    d = os.path.join(tmp, "idle")
    os.mkdir(d)
    with open(os.path.join(d, "app.conf"), "w") as f:
        f.write("v = 1\n")
    return run_case(d, [])


def many_files(tmp):
    d = os.path.join(tmp, "many")
    os.mkdir(d)
    t0 = time.time()
    body = b"key = " + b"x" * 90 + b"\n"
    for i in range(100_000):
        with open(os.path.join(d, "f%06d.conf" % i), "wb") as f:
            f.write(body)
    print("signal_load: 100,000 files created in %.1f s" % (time.time() - t0), file=sys.stderr, flush=True)
    time.sleep(AGE)
    # Polling at its default interval does the work; nothing changes.
    try:
        return run_case(d, ["--poll-interval", "5s"])
    finally:
        shutil.rmtree(d)


def big_file(tmp):
    d = os.path.join(tmp, "big")
    os.mkdir(d)
    path = os.path.join(d, "big.conf")
    block = os.urandom(1 << 20)
    size = 2 << 30
    with open(path, "wb") as f:
        for _ in range(size >> 20):
            f.write(block)
    time.sleep(AGE)

    def rewrite(stop):
        # A whole pass in place, a new first byte each time, then a pause.
        n = 0
        while not stop.is_set():
            n += 1
            with open(path, "r+b") as f:
                f.write(bytes([n % 256]))
                for _ in range((size >> 20) - 1):
                    f.write(block)
                    if stop.is_set():
                        return
            stop.wait(2)

    try:
        return run_case(path, [], rewrite)
    finally:
        shutil.rmtree(d)


def configmap(tmp):
    d = os.path.join(tmp, "cm")
    os.mkdir(d)
    kubelet_prepare(d, keys(10_000, 0))()
    time.sleep(AGE)

    def swaps(stop):
        v = 0
        while not stop.is_set():
            v += 1
            go = kubelet_prepare(d, keys(10_000, v))
            go()
            stop.wait(2)

    try:
        return run_case(d, [], swaps)
    finally:
        shutil.rmtree(d)


def routed(tmp):
    """10,000 files under 1,000 --on-change rules that a glob must work to
    turn down: every file is routed at every burst (the rule of each is
    worked out off the loop and remembered)."""
    d = os.path.join(tmp, "routed")
    for i in range(10_000):
        sub = os.path.join(d, "d%d" % (i % 100))
        os.makedirs(sub, exist_ok=True)
        with open(os.path.join(sub, "f%d.conf" % i), "w") as f:
            f.write("v1 %d\n" % i)
    time.sleep(AGE)
    rules = []
    for i in range(1000):
        rules += ["--on-change", "**/nomatch-%d-*[a-z]?.conf=restart" % i]
    rules += ["--on-change", "*.conf=command:/bin/true"]

    def rewrite(stop):
        v = 1
        while not stop.is_set():
            v += 1
            for i in range(10_000):
                with open(os.path.join(d, "d%d" % (i % 100), "f%d.conf" % i), "w") as f:
                    f.write("v%d %d\n" % (v, i))
            stop.wait(2)

    try:
        return run_case(d, rules, rewrite)
    finally:
        shutil.rmtree(d)


def main():
    if os.geteuid() != 0:
        raise SystemExit("signal_load: needs root (PID namespaces)")
    if not os.path.exists(OURS):
        raise SystemExit("signal_load: build first (cargo build --release): %s missing" % OURS)
    tmp = tempfile.mkdtemp(prefix="fm-sigload-")
    rows = []
    t0 = time.time()
    try:
        for label, case in (
            ("idle (one-file directory)", idle),
            ("100,000 files in a watched directory, polling every 5 s", many_files),
            ("a 2 GB file rewritten in place, a pass every ~2 s", big_file),
            ("10,000-key ConfigMap swapped every 2 s", configmap),
            ("10,000 files rewritten every 2 s under 1,000 --on-change rules", routed),
        ):
            # `--only NAME`: one case (the function's name), e.g. to measure
            # an older binary (FM_BIN) on it.
            if "--only" in sys.argv and sys.argv[sys.argv.index("--only") + 1] != case.__name__:
                continue
            print("signal_load: " + label, file=sys.stderr, flush=True)
            rows.append((label, case(tmp)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lines = [
        "## Signal latency while the config is being worked on",
        "",
        "`bench/signal_load.py`, %s, %s (%s), %.0f s. SIGUSR1 to the manager (PID 1) → the"
        % (time.strftime("%Y-%m-%d"), os.path.relpath(OURS, ROOT), "%d KB" % (os.path.getsize(OURS) // 1000),
           time.time() - t0),
        "child's handler; one signal every 10 ms for %.0f s, a stall's missed sends counted" % WINDOW,
        "(see the script). CPU: the manager's, all threads, share of one core during the window.",
        "",
        "| while | signals | p50 (µs) | p99 (ms) | max (ms) | stalled | CPU |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, (lat, counted, lost, stalled, cpu) in rows:
        lines.append("| %s | %d%s | %.0f | %.2f | %.0f | %.0f %% | %.0f %% |" % (
            label, len(lat), " (%d lost)" % lost if lost else "", statistics.median(counted) * 1e3,
            pct(counted, 0.99), max(counted), stalled * 100, cpu * 100))
    table = "\n".join(lines)
    print(table)
    if "--write" in sys.argv:
        put_table("signal-load", table)


if __name__ == "__main__":
    main()
