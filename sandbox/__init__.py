"""The sandbox tenant: a Microsoft Graph v1.0-compatible SharePoint tenant served on 127.0.0.1.

`sandbox.tenant` holds the model (users, groups, sites, libraries, items, permissions), the
permission oracle and the mutations; `sandbox.loader` reads a declarative YAML tenant file;
`sandbox.server` serves the model over HTTP so that the real msgraph-sdk can talk to it.

    python -m sandbox serve [--tenant demo] [--port N]
"""
