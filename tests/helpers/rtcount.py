"""Counts queued real-time signals: blocks SIG, writes "ready", then takes
each one with sigwaitinfo and writes the count to OUT_FILE after every 50
and when none came for 2 s. Usage: rtcount.py SIGNUM OUT_FILE"""
import signal
import sys

sig, out = int(sys.argv[1]), sys.argv[2]
signal.pthread_sigmask(signal.SIG_BLOCK, {sig, signal.SIGTERM})


def write(text):
    with open(out, "w") as f:
        f.write(text + "\n")


write("ready")
count = 0
while True:
    info = signal.sigtimedwait({sig, signal.SIGTERM}, 2.0)
    if info is None:
        write("count %d" % count)
        continue
    if info.si_signo == signal.SIGTERM:
        write("count %d" % count)
        sys.exit(0)
    count += 1
    if count % 50 == 0:
        write("count %d" % count)
