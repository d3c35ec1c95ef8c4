"""Run every benchmark in turn; each prints its table and rewrites its section of BENCHMARKS.md.

Run:  .venv/bin/python benchmarks/run_all.py [--quick]

--quick runs smaller sizes, for checking that the scripts work; the figures in BENCHMARKS.md come from
the full sizes. Each benchmark measures its baseline in the same run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = {
    "server.py": ["--records", "2000", "--search-sizes", "2000,20000"],
    "seed.py": ["--rows", "1000"],
    "status.py": ["--records", "2000"],
    "export.py": ["--rows", "100000"],
}


def main(argv: list[str] | None = None) -> int:
    """Run each benchmark script as its own process; stop at the first failure."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, and BENCHMARKS.md is left alone")
    args = parser.parse_args(argv)
    for script, quick_args in BENCHMARKS.items():
        extra = [*quick_args, "--no-write"] if args.quick else []
        print(f"\n== {script} {' '.join(extra)}", flush=True)
        result = subprocess.run([sys.executable, str(HERE / script), *extra], check=False)
        if result.returncode != 0:
            print(f"{script} failed with exit code {result.returncode}", file=sys.stderr)
            return result.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
