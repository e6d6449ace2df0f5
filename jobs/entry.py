"""The `spindex` command's entry point, light on purpose.

Extraction workers (multiprocessing's fork server) run the script that started their process
again, as `__mp_main__`, before their first job. The console script imports this module, and
this module imports the command line only when it runs: a worker would otherwise import it
too (typer, rich, the settings; about 0.5 s and their memory, in every worker).
"""

from __future__ import annotations


def main() -> None:
    """Run the `spindex` command line."""
    from jobs.cli import main as cli_main

    cli_main()
