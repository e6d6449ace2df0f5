"""msgraph-sdk models where the client needs them at the boundary, and made cheap to parse."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


def parse_permissions(body: Mapping[str, object]) -> list[Any]:
    """A `$batch` sub-response body as msgraph `Permission` models (typed at the boundary)."""
    import json

    from kiota_serialization_json.json_parse_node_factory import JsonParseNodeFactory
    from msgraph.generated.models.permission_collection_response import PermissionCollectionResponse

    node = JsonParseNodeFactory().get_root_parse_node("application/json", json.dumps(body).encode())
    parsed = node.get_object_value(PermissionCollectionResponse)
    return list(parsed.value or []) if parsed is not None else []


def lighten_entity_parsing() -> None:
    """Make msgraph-sdk's `Entity.get_field_deserializers` cheap, if it is what we know.

    Every Graph model's deserializer ends in `Entity.get_field_deserializers`, which runs about
    2,400 `from .x import X` statements (for type hints only) on *each call*: some 9 ms of CPU
    per parsed object, most of a sync's CPU time and, on the event loop, latency for every
    other request. It returns just the `id` and `@odata.type` fields. This swaps in a function
    returning the same two, only after checking in the installed SDK's source that those two
    are all the original returns; otherwise it leaves the SDK as it is.
    """
    import inspect
    import re

    from msgraph.generated.models.entity import Entity

    if getattr(Entity.get_field_deserializers, "_spindex_light", False):
        return
    try:
        source = inspect.getsource(Entity.get_field_deserializers)
    except (OSError, TypeError):
        return
    body = source.split("fields: dict[str, Callable[[Any], None]] = {", 1)
    keys = re.findall(r'^\s*"([^"]+)":', body[1].split("}", 1)[0], re.M) if len(body) == 2 else []
    if sorted(keys) != ["@odata.type", "id"] or "super()" in source or not source.rstrip().endswith("return fields"):
        return

    def get_field_deserializers(self: Any) -> dict[str, Callable[[Any], None]]:
        return {
            "id": lambda n: setattr(self, "id", n.get_str_value()),
            "@odata.type": lambda n: setattr(self, "odata_type", n.get_str_value()),
        }

    get_field_deserializers._spindex_light = True  # type: ignore[attr-defined]
    Entity.get_field_deserializers = get_field_deserializers  # type: ignore[method-assign]
