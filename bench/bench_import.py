"""Import time of the pack inside the real host (read from the host's own "Import times" log).

    python bench/bench_import.py [--runs 3]
"""
import argparse
import pathlib
import re
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from host_harness import HostServer, host_dir  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    host = host_dir()
    times = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = pathlib.Path(tmp)
            (tmp / "models").mkdir()
            srv = HostServer(host, tmp / "base", tmp / "models").start()
            try:
                log = srv.log()
            finally:
                srv.stop()
            m = re.search(r"(\d+\.\d+) seconds: .*wan_animate_kit", log)
            if not m:
                raise SystemExit("the host log has no import time for the pack:\n" + log[-2000:])
            times.append(float(m.group(1)))
    print(f"pack import time in ComfyUI: {', '.join(f'{t:.3f}' for t in times)} s (min {min(times):.3f} s)")


if __name__ == "__main__":
    main()
