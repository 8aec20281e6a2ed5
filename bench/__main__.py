"""Run every benchmark (or ``--only`` some) and print one table."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import platform
import sys
import time

from .common import Row, table

MODULES = ["api_calls", "api_calls_quickbooks", "throughput", "scaleout", "ratelimit", "dispatcher", "scheduler_tick",
           "db_work",
           "memory"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a ~30 s smoke run")
    parser.add_argument("--only", nargs="+", choices=MODULES, help="run only these benchmarks")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    rows: list[Row] = []
    failed: list[str] = []
    started = time.monotonic()
    for name in args.only or MODULES:
        t0 = time.monotonic()
        print(f"== {name}", flush=True)
        try:
            module = importlib.import_module(f"bench.{name}")
            rows.extend(module.run(quick=args.quick))
        except Exception as exc:  # one broken benchmark must not hide the others' numbers
            failed.append(name)
            rows.append(Row(name, "FAILED", f"{type(exc).__name__}: {exc}"[:120], ""))
            logging.getLogger("bench").exception("benchmark %s failed", name)
        print(f"   ({time.monotonic() - t0:.1f} s)", flush=True)
    print()
    print(f"machine: {os.cpu_count()} CPUs ({platform.machine()}), Python {platform.python_version()}, "
          f"{platform.system()} {platform.release()}; total {time.monotonic() - started:.0f} s"
          f"{' (quick)' if args.quick else ''}")
    print(table(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
