"""Where the time goes: py-spy samples a dialback process under create load (or dispatching).

Run: ``python -m bench.profile [--seconds 15] [--what create|dispatch] [--out DIR]``. Needs
``py-spy`` (``.venv/bin/pip install py-spy``) and wrk for create load. Writes the collapsed
stacks (``DIR/<what>.folded``, for flame graph tools) and prints the functions with the most
samples, inclusive and self, with the share of samples of the whole process.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import dispatch
from bench.runner import PROFILES, Run
from bench.stack import BENCH_SERVICE, BENCH_TENANT

SKIP_FRAMES = ("<module>", "run (asyncio", "run_forever", "_run_once", "_run (asyncio")


def summarise(folded: Path, top: int = 30) -> str:
    """Top frames by inclusive and by self samples from py-spy's collapsed output."""
    inclusive: collections.Counter[str] = collections.Counter()
    self_: collections.Counter[str] = collections.Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = [f for f in stack.split(";") if f]
        if not frames:
            continue
        self_[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
    out = [f"{total} samples", "", "inclusive:"]
    for frame, n in inclusive.most_common(top):
        if not frame.startswith(SKIP_FRAMES):
            out.append(f"  {100 * n / total:5.1f}%  {frame}")
    out += ["", "self:"]
    for frame, n in self_.most_common(top):
        out.append(f"  {100 * n / total:5.1f}%  {frame}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Profile one dialback process; print the summary."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=15)
    p.add_argument("--what", choices=("create", "dispatch"), default="create")
    p.add_argument("--level", default="info", help="log level during create load")
    p.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "dialback-profile")
    args = p.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("py-spy is not installed: .venv/bin/pip install py-spy", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    folded = args.out / f"{args.what}.folded"
    profile = PROFILES["quick"]
    run = Run(profile, Path(tempfile.mkdtemp(prefix="dialback-profile-")))
    try:
        run.start()
        run.setup()
        run.a.set_log_level(args.level)
        for proc in (run.b, run.floor, run.sim):
            proc.stop()
        record = [
            spy,
            "record",
            "--pid",
            str(run.a.pid),
            "--format",
            "raw",
            "--rate",
            "250",
            "--duration",
            str(int(args.seconds)),
            "--output",
            str(folded),
            "--nonblocking",
        ]
        if args.what == "create":
            run.load(run.a.public_port, run.key, 32, 1)  # warm up
            th = threading.Thread(
                target=run.load, args=(run.a.public_port, run.key, 32, args.seconds + 2)
            )
            th.start()
            time.sleep(1)
            subprocess.run(record, check=True, capture_output=True)
            th.join()
        else:
            target = dispatch.target(run.servers.database_url, BENCH_TENANT, BENCH_SERVICE)
            spy_proc = subprocess.Popen(
                record, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            dispatch.measure_dispatch(target, run.servers.routing.url, 100_000)
            spy_proc.wait(timeout=args.seconds + 60)
    finally:
        run.stop()
    print(summarise(folded))
    print(f"\ncollapsed stacks: {folded}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
