"""What /proc says of a process, for the benchmarks."""
import os


def cpu_ns(pid):
    """CPU time of every thread of `pid` (schedstat), in ns."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
            total += int(f.read().split()[0])
    return total
