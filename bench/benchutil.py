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


def status_mib(pid: int, field: str = "VmRSS") -> float:
    """A /proc/<pid>/status field (VmRSS, VmHWM, ...) in MiB; OSError once the process is gone."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def meminfo_mib(field: str) -> float:
    """A /proc/meminfo field in MiB (Linux); inf elsewhere."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("inf")


def fill_widget_defaults(prompt: dict, info: dict) -> dict:
    """Give every node of an API ``prompt`` the default of each required widget it lacks (a widget
    added since the workflow was built), from the server's ``/object_info``."""
    for node in prompt.values():
        for name, spec in info[node["class_type"]]["input"].get("required", {}).items():
            if name not in node["inputs"] and len(spec) > 1 and isinstance(spec[1], dict) and "default" in spec[1]:
                node["inputs"][name] = spec[1]["default"]
    return prompt


class ServerRss:
    """Samples the RSS of process ``pid`` 50 times a second in a thread, each sample tagged with
    ``node`` (set it to the node the server reports executing). Over ``limit_mib`` it calls
    ``on_limit`` once and stops sampling."""

    def __init__(self, pid: int, limit_mib: float | None = None, on_limit=None):
        import threading

        self.pid, self.limit, self.on_limit = pid, limit_mib, on_limit
        self.node = "(idle)"
        self.samples: list[tuple[float, float, str]] = []  # (time, MiB, node)
        self.over = ""  # why sampling stopped early
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import time

        while not self._stop.is_set():
            try:
                rss = status_mib(self.pid)
            except OSError:
                return
            self.samples.append((time.time(), rss, self.node))
            if self.limit is not None and rss > self.limit:
                self.over = f"over {self.limit:.0f} MiB in {self.node}"
                if self.on_limit is not None:
                    self.on_limit()
                return
            time.sleep(0.02)

    def start(self) -> "ServerRss":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def per_node(self) -> dict[str, tuple[float, float]]:
        """node -> (peak MiB, seconds sampled in it), in execution order."""
        peaks: dict[str, float] = {}
        spans: dict[str, list[float]] = {}
        for t, rss, node in self.samples:
            peaks[node] = max(peaks.get(node, 0.0), rss)
            spans.setdefault(node, [t, t])[1] = t
        return {node: (peaks[node], spans[node][1] - spans[node][0]) for node in peaks}

    def top(self) -> tuple[float, float, str]:
        return max(self.samples, key=lambda s: s[1])
