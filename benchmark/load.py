"""How much CPU other processes took while we timed: from the kernel's counters (/proc/stat) and this process's own
CPU time, around every timed slice.

Under load the runtimes do not slow down alike (OpenMP's worker threads wait for each other when one loses its core;
OpenVINO's scheduler copes better), so a busy machine bends even the ratios of one run. The share reported is the part
of the cores this run asked for (--threads) that something else used: other processes' CPU seconds per wall second,
after filling the cores the run did not ask for, over the threads. Steal (a hypervisor running other guests on our
vCPUs) is reported apart: it is invisible from inside except through that counter.
"""
import os
import resource
import time

# A row is busy when other processes took more than this share of its cores on average over its slices. A quiet
# 2-core VM reads 0-3% here (the counters tick every 10 ms, and the guest's own services wake now and then); one
# process spinning on one of two cores reads ~50%; see docs/benchmark.md for the run that measured how far the
# ratios move at full load.
BUSY_SHARE = 0.10


def usable_cpus():
    """The CPUs this process may run on (its affinity mask; every CPU where the OS has no such call)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def _proc_stat(cpus=None):
    """(busy CPU seconds, steal seconds) summed over `cpus` (the per-CPU lines of /proc/stat; all CPUs when None),
    or None where the counters cannot be read."""
    wanted = None if cpus is None else {f"cpu{c}" for c in cpus}
    busy = steal = found = 0
    try:
        with open("/proc/stat") as f:
            for line in f:
                fields = line.split()
                if not fields or not fields[0].startswith("cpu"):
                    continue
                if (wanted is None and fields[0] != "cpu") or (wanted is not None and fields[0] not in wanted):
                    continue
                ticks = [int(v) for v in fields[1:]] + [0] * 10
                user, nice, system, _idle, _iowait, irq, softirq, stolen = ticks[:8]
                busy += user + nice + system + irq + softirq
                steal += stolen
                found += 1
        hz = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return None
    if found != (1 if wanted is None else len(wanted)):  # a CPU's line missing: no reading rather than a wrong one
        return None
    return busy / hz, steal / hz


def _own_cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process, the runtimes' pools included
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """meter.start(); ...timed work...; share, steal = meter.stop(): other processes' share of the run's cores."""

    def __init__(self, threads, cpus=None):
        # The cores this run can use are those of its affinity mask, and no more than it has: --threads 24 on 2
        # cores asks for 2 (measured against 24, a full load read as 8%)
        self.cpus = usable_cpus() if cpus is None else list(cpus)
        self.cores = len(self.cpus)
        self.threads = min(max(1, int(threads)), self.cores)
        self.available = _proc_stat(self.cpus) is not None
        self._start = None

    def start(self):
        self._start = (time.perf_counter(), _proc_stat(self.cpus), _own_cpu())

    def stop(self):
        """(busy share, steal share) since start(); (None, None) without the kernel's counters."""
        wall0, stat0, own0 = self._start
        wall, stat, own = time.perf_counter() - wall0, _proc_stat(self.cpus), _own_cpu() - own0
        if stat0 is None or stat is None or wall <= 0:
            return None, None
        other = max(0.0, (stat[0] - stat0[0]) - own) / wall  # cores' worth of other processes' work
        spare = max(0, self.cores - self.threads)  # cores this run left free, which others may use first
        share = max(0.0, other - spare) / self.threads
        steal = max(0.0, stat[1] - stat0[1]) / wall / self.cores
        return min(share, 1.0), min(steal, 1.0)


def busy_columns(shares, background=0.0):
    """The row's columns from its slices' [(share, steal)]: mean and max share, mean steal, and the verdict: busy
    when other processes took more than BUSY_SHARE above the machine's idle background, measured before the run (a
    VM's own services read 0-3%, and once 12% over a long run: not another job)."""
    shares = [(s, t) for s, t in shares if s is not None]
    if not shares:
        return {"busy_share_mean": None, "busy_share_max": None, "steal_share_mean": None, "busy": "unrecorded"}
    mean = sum(s for s, _ in shares) / len(shares)
    steal = sum(t for _, t in shares) / len(shares)
    return {"busy_share_mean": mean, "busy_share_max": max(s for s, _ in shares), "steal_share_mean": steal,
            "busy": "yes" if mean + steal > BUSY_SHARE + (background or 0.0) else "no"}


def quiet_check(threads, seconds=1.0):
    """Other processes' share of `threads` cores over `seconds` of this process sleeping (None without counters)."""
    meter = CpuMeter(threads)
    if not meter.available:
        return None
    meter.start()
    time.sleep(seconds)
    share, steal = meter.stop()
    return share + steal
