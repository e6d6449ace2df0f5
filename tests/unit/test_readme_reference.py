"""The README's configuration reference names every setting spindex has.

Defends: a setting added to `ingest/config.py` without a line in the README fails the suite,
so the reference a user reads cannot drift from the settings the code reads.
"""

from __future__ import annotations

from pathlib import Path

from ingest.config import reference

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_in_the_readme() -> None:
    missing = []
    for env, _default, _description in reference():
        group = env.rsplit("__", 1)[0] + "__"  # a row may name siblings together: `X__A` / `__B`
        leaf = "__" + env.rsplit("__", 1)[-1]
        if env not in README and not (group in README and leaf in README):
            missing.append(env)
    assert missing == []


def test_the_two_commands_are_documented() -> None:
    assert "make demo" in README and "make test" in README
