"""`python -m bench` (`make bench`): run the suite, write bench/results/, print the table.

Missed targets are reported, never fatal; the exit status is 1 only when something broke.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .errors import BenchError
from .report import render_markdown, write_results
from .suite import BenchSettings, run_suite

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    try:
        settings = BenchSettings.from_env()
        results = run_suite(settings, progress=_progress)
        paths = write_results(results, RESULTS)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    print(render_markdown(results))
    _progress("wrote " + ", ".join(str(p.relative_to(RESULTS.parent.parent)) for p in paths))
    return 0


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
