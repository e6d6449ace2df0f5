"""What a sync's own process does not need: an encoding of its own. Chunks carry exact token
counts from the extraction workers, so building one (~0.4 s, ~35 MiB) would only delay the
first document. Checked in a fresh interpreter, as a job runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import asyncio, json, sys, tempfile
from pathlib import Path
import tiktoken.registry
from ingest.runs import run_sync
from sandbox.server import SandboxServer
from sandbox.tenant import load_tenant
from tests.integration.conftest import spindex_settings

if __name__ == "__main__":
    tenant = load_tenant("demo")
    with SandboxServer(tenant) as server:
        settings = spindex_settings(server, tenant, Path(tempfile.mkdtemp()), None)
        report = asyncio.run(run_sync(settings, full=True))
    print(json.dumps({"status": report.status, "created": report.totals().get("created", 0),
                      "encodings": sorted(tiktoken.registry.ENCODINGS)}))
"""


def test_a_sync_builds_no_encoding_in_its_own_process(tmp_path: Path) -> None:
    script = tmp_path / "sync_once.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == "ok" and result["created"] > 0
    assert result["encodings"] == []
