"""Small helpers shared by the bench scripts."""
from __future__ import annotations


def rss_mib() -> float:
    """This process's resident set size in MiB (Linux /proc; NaN elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")
