"""Types of JSON data as `json.loads` returns it, for signatures that carry a request body or a stored
JSON document without saying `Any` (docs/architecture.md#rules-core)."""

from __future__ import annotations

type JSONValue = str | int | float | bool | None | list[JSONValue] | dict[str, JSONValue]
type JSONObject = dict[str, JSONValue]
