"""`python -m jobs <full|delta|acl|reindex>`: the one-shot entry point for container jobs.

Exit codes: 0 clean, 10 finished with item failures, 20 aborted, 2 configuration error.
"""

from __future__ import annotations

import sys

from jobs.cli import run_app


def main(argv: list[str] | None = None) -> None:
    """Run one sync job, as `spindex run <mode>` does."""
    run_app(args=argv if argv is not None else sys.argv[1:], prog_name="python -m jobs")


if __name__ == "__main__":
    main()
