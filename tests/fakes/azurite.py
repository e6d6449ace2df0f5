"""A real Azurite (the Azure Storage emulator) for tests: installed from npm on first use.

It listens on a free port of 127.0.0.1 with in-memory persistence and is stopped afterwards.
`--skipApiVersionCheck` lets azure-storage-blob use its newer default service version.
"""

from __future__ import annotations

import fcntl
import shutil
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INSTALL_DIR = ROOT / ".venv" / "azurite"
AZURITE_SPEC = "azurite@^3.35.0"
# Azurite's documented development account (public, emulator only).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def ensure_installed() -> Path:
    """The azurite-blob executable, installed with npm into the venv on first use."""
    binary = INSTALL_DIR / "node_modules" / ".bin" / "azurite-blob"
    INSTALL_DIR.mkdir(parents=True, exist_ok=True)
    with open(INSTALL_DIR / ".install.lock", "a+") as lock:  # parallel test workers install once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not binary.exists():
            npm = shutil.which("npm")
            if npm is None:
                raise RuntimeError("npm is needed to install Azurite for the Blob state tests")
            subprocess.run(
                [npm, "install", "--prefix", str(INSTALL_DIR), "--no-audit", "--no-fund", "--silent", AZURITE_SPEC],
                check=True,
                timeout=600,
            )
    return binary


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Azurite:
    """An Azurite blob service process; use as a context manager."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def connection_string(self) -> str:
        """A connection string for the emulator's development account."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.port}/{ACCOUNT};"
        )

    def __enter__(self) -> Azurite:
        binary = ensure_installed()
        self.process = subprocess.Popen(
            [str(binary), "--blobHost", "127.0.0.1", "--blobPort", str(self.port), "--inMemoryPersistence",
             "--disableTelemetry", "--silent", "--skipApiVersionCheck"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError("Azurite exited during start-up")
                time.sleep(0.1)
        self.__exit__(None, None, None)
        raise RuntimeError("Azurite did not start within 30 s")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
