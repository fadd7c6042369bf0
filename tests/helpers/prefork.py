"""A tiny prefork server: a master that handles HUP and USR2 (as gunicorn,
php-fpm and nginx masters do) and two workers that keep both at their
default action (as gunicorn and php-fpm workers do: the signal kills them).

Usage: prefork.py OUT_FILE. Writes "worker <pid>" per worker, "ready" once
both run, and "master <SIGNAME>" for each signal the master handles. Workers
exit when the master is gone, so nothing outlives a test."""
import os
import signal
import sys
import time

out = sys.argv[1]


def log(line):
    with open(out, "a") as f:
        f.write(line + "\n")


workers = []
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        signal.signal(signal.SIGUSR2, signal.SIG_DFL)
        master = os.getppid()
        log("worker %d" % os.getpid())
        while os.getppid() == master:
            time.sleep(0.05)
        os._exit(0)
    workers.append(pid)

signal.signal(signal.SIGHUP, lambda n, f: log("master SIGHUP"))
signal.signal(signal.SIGUSR2, lambda n, f: log("master SIGUSR2"))
signal.signal(signal.SIGTERM, lambda n, f: sys.exit(0))
log("ready")
while True:
    time.sleep(0.05)
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        pass
