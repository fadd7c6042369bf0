#!/usr/bin/env python3
"""Side-by-side benchmark of flush-manager and peer inits (tini, tini-static,
dumb-init, catatonit), measured the same way in one run, alternating them,
several repetitions, medians and ratios against tini-static.

Run it through bench/run.sh, which installs the peers and builds everything.
Writes bench/RESULTS.md.
"""
import datetime
import os
import platform
import random
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from procfs import cpu_ns

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OURS = os.path.join(ROOT, "target/static/flush-manager")
HELPERS = os.path.join(ROOT, "target/bench/helpers")
NS = ["unshare", "--pid", "--fork", "--mount-proc"]
QUICK = "--quick" in sys.argv
REPS = 2 if QUICK else 5

CONF_DIR = tempfile.mkdtemp(prefix="fm-bench-")
CONF = os.path.join(CONF_DIR, "app.conf")
with open(CONF, "w") as f:
    f.write("bench = 1\n")

# Ours runs with a config watch active (inotify + polling): the realistic case.
INITS = {
    "flush-manager": [OURS, "--config", CONF, "--"],
    "tini-static": ["/usr/bin/tini-static", "-s", "--"],
    "tini": ["/usr/bin/tini", "-s", "--"],
    "dumb-init": ["/usr/bin/dumb-init", "--"],
    "catatonit": ["/usr/bin/catatonit", "--"],
}
INITS = {k: v for k, v in INITS.items() if os.path.exists(v[0])}
ENV = dict(os.environ, FLUSH_MANAGER_LOG="warn")


def shuffled(inits):
    """The (name, value) pairs of `inits` in a new random order each round.
    In a fixed order, the same init always runs right after the same other
    one, and pays for what that one leaves running: an init that watched
    files leaves the kernel's teardown of its inotify instance (a kworker,
    milliseconds) to run into the next start; measured, the init always
    placed after another watching one started 0.1-0.4 ms later than the
    same binary placed after tini."""
    items = list(inits.items())
    random.shuffle(items)
    return items


def ns_start(argv, fd=None, **kw):
    """Starts argv as PID 1 of a fresh PID namespace; returns (proc, init host pid).
    `fd` is passed down to the helper child (as $HELPER_FD)."""
    env = dict(ENV, HELPER_FD=str(fd)) if fd is not None else ENV
    if fd is not None:
        kw["pass_fds"] = (fd,)
    p = subprocess.Popen(NS + argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    pid = 0
    for _ in range(2000):
        try:
            with open(f"/proc/{p.pid}/task/{p.pid}/children") as f:
                kids = f.read().split()
            if kids:
                pid = int(kids[0])
                break
        except OSError:
            pass
        time.sleep(0.005)
    return p, pid


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return f.read().split()
    except OSError:
        return []


def wait_child(pid):
    for _ in range(2000):
        if children(pid):
            return
        time.sleep(0.005)


def stop(p):
    """Kills p's children (for unshare: the init, PID 1 of its namespace, so
    everything in it dies; for a plain init: its child), then p."""
    for k in children(p.pid):
        try:
            os.kill(int(k), signal.SIGKILL)
        except OSError:
            pass
    p.kill()
    p.wait()


def read_kv(path, keys):
    out = {}
    with open(path) as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in keys:
                out[name] = int(rest.split()[0])
    return out


def ctx_switches(pid):
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        kv = read_kv(f"/proc/{pid}/task/{tid}/status", ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"))
        total += sum(kv.values())
    return total


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


results = {name: {} for name in INITS}


def bench_size():
    for name, argv in INITS.items():
        results[name]["size"] = os.path.getsize(argv[0])


def bench_idle():
    """All inits at once, each PID 1 of its own namespace supervising sleep."""
    secs = 5 if QUICK else 10
    rss, pss, thr, wake, anon = ({n: [] for n in INITS} for _ in range(5))
    for _ in range(max(2, REPS // 2)):
        running = {n: ns_start(argv + ["sleep", "1000"]) for n, argv in INITS.items()}
        for _, pid in running.values():
            wait_child(pid)
        time.sleep(1.5)
        c0 = {}
        for n, (_, pid) in running.items():
            kv = read_kv(f"/proc/{pid}/smaps_rollup", ("Rss", "Pss"))
            rss[n].append(kv["Rss"])
            pss[n].append(kv["Pss"])
            thr[n].append(len(os.listdir(f"/proc/{pid}/task")))
            anon[n].append(read_kv(f"/proc/{pid}/status", ("RssAnon",))["RssAnon"])
            c0[n] = ctx_switches(pid)
        time.sleep(secs)
        for n, (_, pid) in running.items():
            wake[n].append((ctx_switches(pid) - c0[n]) * 10 / secs)
        for p, _ in running.values():
            stop(p)
    for n in INITS:
        results[n].update(rss=med(rss[n]), pss=med(pss[n]), threads=med(thr[n]), wakeups=med(wake[n]),
                          anon=med(anon[n]))


def bench_start():
    """Init start → child running (the child writes a byte at its start), as a
    plain process, alternating the inits. Also the whole `init -- /bin/true`."""
    n_runs = 50 if QUICK else 200
    start = {n: [] for n in INITS}
    total = {n: [] for n in INITS}
    for _ in range(n_runs):
        for n, argv in shuffled(INITS):
            r, w = os.pipe()
            t0 = time.perf_counter()
            p = subprocess.Popen(argv + [HELPERS, "started"], env=dict(ENV, HELPER_FD=str(w)), pass_fds=(w,),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            os.close(w)
            if select.select([r], [], [], 10)[0]:
                os.read(r, 1)
                start[n].append((time.perf_counter() - t0) * 1e3)
            os.close(r)
            stop(p)
            t0 = time.perf_counter()
            subprocess.run(argv + ["/bin/true"], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            total[n].append((time.perf_counter() - t0) * 1e3)
    for n in INITS:
        results[n]["start_ms"] = med(start[n])
        results[n]["true_ms"] = med(total[n])


def bench_signal():
    """SIGUSR1 to the init (PID 1) → the child's handler writes a byte."""
    total = 200 if QUICK else 1000
    block = 100
    lat = {n: [] for n in INITS}
    running = {}
    for n, argv in INITS.items():
        r, w = os.pipe()
        p, pid = ns_start(argv + [HELPERS, "sigecho"], fd=w)
        os.close(w)
        running[n] = (p, pid, r)
    for n, (p, pid, r) in running.items():
        select.select([r], [], [], 10)
        os.read(r, 1)
    for _ in range(total // block):
        for n, (p, pid, r) in shuffled(running):
            for _ in range(block):
                t0 = time.perf_counter_ns()
                os.kill(pid, signal.SIGUSR1)
                ready, _, _ = select.select([r], [], [], 5)
                if ready:
                    os.read(r, 1)
                    lat[n].append((time.perf_counter_ns() - t0) / 1e3)
                time.sleep(0.0005)
    for n, (p, pid, r) in running.items():
        stop(p)
        os.close(r)
        results[n]["sig_p50"] = med(lat[n])
        results[n]["sig_p99"] = pct(lat[n], 0.99) if lat[n] else float("nan")
        results[n]["sig_lost"] = total - len(lat[n])


def bench_rt():
    """1000 queued real-time signals to the init → how many the child counts."""
    # 40 is a real-time signal for glibc (34–64) and musl (35–64) alike.
    sig, total = 40, 1000
    for n, argv in INITS.items():
        r, w = os.pipe()
        p, pid = ns_start(argv + [HELPERS, "rtcount", str(sig)], fd=w)
        os.close(w)
        select.select([r], [], [], 10)
        os.read(r, 1)
        for _ in range(total):
            os.kill(pid, sig)
        ready, _, _ = select.select([r], [], [], 15)
        got = int(os.read(r, 32).split()[0]) if ready else 0
        stop(p)
        os.close(r)
        results[n]["rt_count"] = got


def bench_storm():
    """5000 orphans exit at once → time until the init has reaped them all."""
    n_orphans = 2000 if QUICK else 5000
    t = {n: [] for n in INITS}
    for _ in range(max(2, REPS // 2)):
        for n, argv in INITS.items():
            r, w = os.pipe()
            p, pid = ns_start(argv + [HELPERS, "storm", str(n_orphans)], fd=w, stdin=subprocess.PIPE)
            os.close(w)
            select.select([r], [], [], 60)
            os.read(r, 1)
            while len(children(pid)) < n_orphans + 1:
                time.sleep(0.01)
            t0 = time.perf_counter()
            p.stdin.write(b"g")
            p.stdin.flush()
            while len(children(pid)) > 1:
                time.sleep(0.001)
            t[n].append((time.perf_counter() - t0) * 1e3)
            stop(p)
            os.close(r)
    for n in INITS:
        results[n]["storm_ms"] = med(t[n])


def kubelet_swap(d, payload):
    """The kubelet's atomic writer: new ts dir, ..data_tmp, rename, links, cleanup."""
    old = os.readlink(os.path.join(d, "..data")) if os.path.islink(os.path.join(d, "..data")) else None
    ts = "..%s.%d" % (datetime.datetime.now().strftime("%Y_%m_%d_%H_%M_%S"), time.perf_counter_ns() % 10**9)
    os.mkdir(os.path.join(d, ts))
    for k, v in payload.items():
        with open(os.path.join(d, ts, k), "w") as f:
            f.write(v)
    os.symlink(ts, os.path.join(d, "..data_tmp"))
    os.rename(os.path.join(d, "..data_tmp"), os.path.join(d, "..data"))
    for k in payload:
        if not os.path.lexists(os.path.join(d, k)):
            os.symlink(os.path.join("..data", k), os.path.join(d, k))
    if old:
        shutil.rmtree(os.path.join(d, old))


def bench_reload():
    """ConfigMap swap → the new child has started (ours only)."""
    out = {}
    for debounce in ("0", "500ms"):
        d = tempfile.mkdtemp(prefix="fm-cm-")
        kubelet_swap(d, {"app.conf": "v0\n", "other.conf": "x\n"})
        r, w = os.pipe()
        p = subprocess.Popen(
            [OURS, "--config", os.path.join(d, "app.conf"), "--debounce", debounce, "--stop-timeout", "2s",
             "--", HELPERS, "started"],
            env=dict(ENV, HELPER_FD=str(w)), pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(w)
        select.select([r], [], [], 10)
        os.read(r, 1)
        time.sleep(0.3)
        lat = []
        for i in range(5 if QUICK else 15):
            t0 = time.perf_counter()
            kubelet_swap(d, {"app.conf": "v%d\n" % (i + 1), "other.conf": "x\n"})
            ready, _, _ = select.select([r], [], [], 10)
            if ready:
                os.read(r, 1)
                lat.append((time.perf_counter() - t0) * 1e3)
            time.sleep(0.2)
        p.send_signal(signal.SIGTERM)
        p.wait()
        os.close(r)
        shutil.rmtree(d)
        out[debounce] = (med(lat), max(lat) if lat else float("nan"), len(lat))
    results["flush-manager"]["reload"] = out


def bench_idle_no_poll():
    """Ours with inotify only (--poll-interval 0): idle wake-ups per 10 s."""
    secs = 5 if QUICK else 10
    p, pid = ns_start([OURS, "--config", CONF, "--poll-interval", "0", "--", "sleep", "1000"])
    wait_child(pid)
    time.sleep(1.5)
    c0 = ctx_switches(pid)
    time.sleep(secs)
    results["flush-manager"]["wakeups_no_poll"] = (ctx_switches(pid) - c0) * 10 / secs
    stop(p)


def bench_churn():
    """CPU (all threads, schedstat ns) of ours for 500 writes to an unrelated
    file in the watched directory."""
    costs = []
    for _ in range(3):
        p = subprocess.Popen([OURS, "--config", CONF, "--", "sleep", "1000"], env=ENV,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_child(p.pid)
        time.sleep(0.5)
        c0 = cpu_ns(p.pid)
        noise = os.path.join(CONF_DIR, "app.log")
        for i in range(500):
            with open(noise, "w") as f:
                f.write("line %d\n" % i)
        time.sleep(1.5)
        costs.append((cpu_ns(p.pid) - c0) / 1e6)
        p.send_signal(signal.SIGTERM)
        p.wait()
    results["flush-manager"]["churn_ms"] = med(costs)


def fmt(x, spec="{:.0f}"):
    return "n/a" if x is None or x != x else spec.format(x)


def write_report(path, secs):
    base = results.get("tini-static", {})
    names = list(INITS)
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass

    def row(label, key, spec, target, better_low=True, ratio_limit=None):
        cells = [fmt(results[n].get(key), spec) for n in names]
        ours, ref = results["flush-manager"].get(key), base.get(key)
        ratio = (ours / ref) if ours is not None and ref else None
        verdict = ""
        if ratio_limit is not None and ratio is not None:
            verdict = "meets" if ratio <= ratio_limit else "misses"
        return f"| {label} | {target} | " + " | ".join(cells) + f" | {fmt(ratio, '{:.2f}')} | {verdict} |"

    lines = [
        "# Benchmark results",
        "",
        f"Date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}. "
        f"Machine: {os.cpu_count()} cores ({cpu}), kernel {platform.release()}. "
        f"Command: `bench/run.sh{' --quick' if QUICK else ''}` ({secs:.0f} s). "
        f"Repetitions: {REPS} (inits alternated within each); medians.",
        "",
        "flush-manager is the static musl build (`docker/build-static.sh`), run with a config "
        "watch active (inotify + 5 s polling) in every row. Peers are Debian's packages.",
        "",
        "| figure | target (ours) | " + " | ".join(names) + " | ours / tini-static | |",
        "|---|---|" + "---|" * len(names) + "---|---|",
        row("binary size (bytes)", "size", "{:.0f}", "≤ 1.1 × tini-static", ratio_limit=1.1),
        row("idle RSS (KiB), PID 1 supervising sleep", "rss", "{:.0f}", "≤ 1.0 × tini-static", ratio_limit=1.0),
        row("idle PSS (KiB)", "pss", "{:.0f}", "≤ 1.0 × tini-static", ratio_limit=1.0),
        row("threads", "threads", "{:.0f}", "≤ 3"),
        row("idle wake-ups per 10 s (context switches)", "wakeups", "{:.1f}", "≤ 2"),
        row("start latency, init start → child running (ms)", "start_ms", "{:.2f}", "≤ 1.5 × tini", ratio_limit=None),
        row("whole `init -- /bin/true` (ms)", "true_ms", "{:.2f}", "", ratio_limit=None),
        row("signal latency p50 (µs)", "sig_p50", "{:.0f}", "≤ 1.0 × tini", ratio_limit=None),
        row("signal latency p99 (µs)", "sig_p99", "{:.0f}", "≤ 1.0 × tini", ratio_limit=None),
        row("real-time signals: 1000 queued to the init → counted by the child", "rt_count", "{:.0f}", "1000"),
        row("zombie storm, orphans exiting at once → all reaped (ms)", "storm_ms", "{:.1f}", "≤ 1.0 × tini",
            ratio_limit=None),
        "",
    ]
    ours = results["flush-manager"]
    tini = results.get("tini", {})

    def vs_tini(key, limit):
        if key in ours and key in tini and tini[key]:
            r = ours[key] / tini[key]
            return f"{r:.2f} × tini ({'meets' if r <= limit else 'misses'} ≤ {limit})"
        return "n/a"

    lines += [
        "Against tini (dynamic): start " + vs_tini("start_ms", 1.5) + "; signal p50 " + vs_tini("sig_p50", 1.0)
        + "; signal p99 " + vs_tini("sig_p99", 1.0) + "; zombie storm " + vs_tini("storm_ms", 1.0) + ".",
        "",
        f"Signals lost: " + ", ".join(f"{n} {results[n].get('sig_lost', 'n/a')}" for n in names) + ".",
        "",
        "## flush-manager only",
        "",
        "| figure | target | measured |",
        "|---|---|---|",
    ]
    for debounce, (m, mx, n) in ours.get("reload", {}).items():
        d_ms = 0 if debounce == "0" else 500
        lines.append(f"| reload latency, ConfigMap swap → new child running, debounce {debounce} (ms, median / max of {n}) "
                     f"| ≤ {d_ms + 50} | {m:.1f} / {mx:.1f} |")
    lines.append(f"| idle wake-ups per 10 s with `--poll-interval 0` (inotify only) | | "
                 f"{fmt(ours.get('wakeups_no_poll'), '{:.1f}')} |")
    lines.append(f"| churn: CPU for 500 writes to an unrelated file in the watched dir (ms) | ≤ 20 | "
                 f"{fmt(ours.get('churn_ms'), '{:.1f}')} |")
    lines += [
        "",
        "## Where ours misses a target, and why (profiled with strace -c, strace -f -T, /proc)",
        "",
        "- **Idle RSS/PSS.** File-backed pages are the binary itself (fault-around maps most of the",
        "  text, as for tini-static); the rest (~230 KiB) is anonymous: three thread stacks (main,",
        "  async-io's reactor, notify's inotify loop) and the allocator. tini is one thread. Fixed",
        "  so far: async-process's own thread (its driver is polled on our executor: 4 → 3 threads),",
        "  a 64 KiB hash buffer moved to the stack, musl static build without PIE or Rust unwind",
        "  tables (854 → ~735 KB on disk).",
        "- **Idle wake-ups** come only from the 5 s polling safety net: each tick is 3 context",
        "  switches (async-io's reactor thread wakes on the timer, wakes the main thread, is woken",
        "  again to re-arm). With `--poll-interval 0` (inotify alone) ours is at 0. async-io's own",
        "  `block_on` (main thread drives the reactor) measured 17 per 10 s: its reactor thread",
        "  backs off through ~10 short sleeps after every event.",
        "- **Start latency.** Signals are read from one signalfd (one syscall at startup, no",
        "  handlers to register); the watcher starts after the child. The whole `init -- /bin/true`",
        "  is still longer: closing an inotify instance at exit waits for an SRCU grace period in",
        "  the kernel (`fsnotify_destroy_group`), after the child is gone.",
        "- **Zombie storm** is dominated by the kernel tearing down 5000 processes; from run to run",
        "  the order of the inits changes (ours measured 0.57 × and 1.14 × tini in two runs).",
        "- **Signal latency.** A signal crosses two threads: async-io's reactor thread sees the",
        "  signalfd readable and wakes the main thread, which reads and forwards it; tini waits in",
        "  sigtimedwait in its only thread. Tens of µs either way; async-io's own block_on made it",
        "  0.5 ms. 0.1.0 (signal-hook: a handler writing to a socket, read by the reactor) was",
        "  76 / 149 µs p50 / p99 against tini's 39 / 66.",
        "- **Real-time signals.** 0.1.0 counted 1 of 1000 (signal-hook keeps one pending flag per",
        "  signal number); the signalfd reads each queued signal once.",
        "",
        '## Footprint of the features (static musl binary, bytes)',
        '',
        '| build | size | vs 0.1.0 |',
        '|---|---|---|',
        '| 0.1.0 | 738,592 | 1.00 |',
        '| + signalfd intake, signal options (signal-hook removed) | 742,688 | 1.01 |',
        '| + config gate, promotion, recursive watching, timers, reload command/URL, metrics, JSON logs | 828,736 | 1.12 |',
        '| + the loop generic over its world (fake-world tests), event-targeted looks at the files | 836,928 | 1.13 |',
        '',
        'Every feature is always compiled in (no cargo features); the budget for the reload,',
        'metrics and log features was +15 %. What was cut to stay within it: no DNS in',
        "`--reload-url` (an IP or `localhost`; musl's resolver alone was ~15 KB), no float",
        'formatting (JSON fields are integers or strings, metric timestamps integer ms): 869,760',
        '→ 828,736. Idle RSS with none of the new options on: anonymous memory is 192 KiB',
        'against 224 KiB for 0.1.0 (no signal-hook tables; no thread, socket or buffer is made',
        'for an option that is off); the file-backed part grows with the binary (804 against',
        "708 KiB), because the kernel's fault-around maps nearly all of a cached executable.",
        "So total idle RSS is about 1,016 against 936 KiB: a miss of the 'must not grow' target,",
        'entirely in mapped code. On this kernel (6.18, ext4) the whole executable is resident as',
        'soon as it runs: `/proc/<pid>/pagemap` shows 203 of its 203 code pages present in an idle',
        'manager (the page cache holds the file in large folios, and a fault maps the whole folio',
        "around it). So file-backed RSS is the binary's size, whatever runs: gathering std's",
        'backtrace symbolizer (212 KB of never-run code) into one block at the start of `.text`',
        'with a linker script changed nothing (820 KiB file-backed either way), and neither did',
        "`madvise(MADV_RANDOM | MADV_DONTNEED)` on our own text. Idle RSS cannot stay at 0.1.0's",
        "while the binary grows by the allowed 15 %; the one lever left, dropping std's backtrace",
        'code (~130 KB), needs a nightly toolchain (`-Z build-std`, `panic_immediate_abort`).',
        "",
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


def main():
    t0 = time.time()
    for step in (bench_size, bench_idle, bench_idle_no_poll, bench_start, bench_signal, bench_rt, bench_storm, bench_reload, bench_churn):
        print(f"bench: {step.__name__} …", file=sys.stderr, flush=True)
        step()
    out = os.environ.get("BENCH_OUT", os.path.join(ROOT, "bench/RESULTS.md"))
    write_report(out, time.time() - t0)
    shutil.rmtree(CONF_DIR, ignore_errors=True)


if __name__ == "__main__":
    main()
