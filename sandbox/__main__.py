"""`python -m sandbox serve [--tenant demo] [--port N]` and `python -m sandbox validate FILE`."""

from __future__ import annotations

import argparse
import sys

from sandbox.loader import TenantFileError, load_tenant_file


def main(argv: list[str] | None = None) -> int:
    """Run the sandbox command line; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="The spindex sandbox SharePoint tenant.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve a tenant over HTTP on 127.0.0.1 until Ctrl-C")
    serve.add_argument("--tenant", default="demo", help="a tenant file, or a shipped tenant's name (default: demo)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    validate = commands.add_parser("validate", help="check a tenant file against the schema")
    validate.add_argument("tenant")
    args = parser.parse_args(argv)

    try:
        tenant = load_tenant_file(args.tenant)
    except TenantFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "validate":
        print(f"{args.tenant}: valid ({len(tenant.sites)} sites, {len(tenant.items())} files and pages)")
        return 0

    from sandbox.auth import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
    from sandbox.server import SandboxServer

    server = SandboxServer(tenant, host=args.host, port=args.port)
    print(server.base_url, flush=True)
    print(f"  graph:     {server.graph_url}", file=sys.stderr)
    print(f"  token:     {server.token_url}", file=sys.stderr)
    print(f"  tenant id: {tenant.tenant_id}", file=sys.stderr)
    print(f"  client:    {DEFAULT_CLIENT_ID} / {DEFAULT_CLIENT_SECRET}", file=sys.stderr)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
