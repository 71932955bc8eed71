"""No input produces a 5xx (docs/security.md#input): hypothesis-generated requests to every operation of the
OpenAPI schema (/api/schema/) and to the webhook, as an anonymous caller, a viewer and a trader.

Inputs are drawn from the schema (objects with their properties, enums, formats) and mixed with junk:
NUL characters, lone surrogates, numbers from 1e30 to 1e309, Unicode digits, blank strings, nesting
thousands deep, wrong types, unknown fields. Every webhook request must also leave exactly one stored row.

The default run is short (a few thousand requests, half a minute); `FUZZ_EXAMPLES=200` makes it ten times
larger. It prints the count of requests and of 5xx answers (`pytest -s`).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory
from positions.models import WebhookSignal
from positions.tests.conftest import alert, load_rules

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20"))
METHODS = ("get", "post", "put", "patch", "delete")

SPECIAL_TEXT = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfffy",
    "1e309",
    "-1e309",
    "1e30",
    "1e-30",
    "١٢٣",
    "NaN",
    "Infinity",
    "0",
    "-1",
    "9" * 60,
    "2026-13-45T99:99:99Z",
    "%00",
    "../../etc/passwd",
    "' OR 1=1 --",
    "{{ticker}}",
    "x" * 3000,
    "BTC/USDT",
    "simulator",
    "00000000-0000-0000-0000-000000000000",
]
SPECIAL_NUMBERS: list[Any] = [0, -1, 10**30, -(10**30), 2**63, 1e308, 1e-300, 0.1, 3.5]

scalars = st.one_of(
    st.sampled_from(SPECIAL_TEXT),
    st.sampled_from(SPECIAL_NUMBERS),
    st.text(max_size=12),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)
junk_json = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.one_of(st.text(max_size=8), st.sampled_from(SPECIAL_TEXT)), children, max_size=3)
    ),
    max_leaves=8,
)


class Deep:
    """JSON nested `depth` deep, written out as text (json.dumps itself cannot go that deep)."""

    def __init__(self, depth: int) -> None:
        self.depth = depth

    def __repr__(self) -> str:
        return f"Deep({self.depth})"


deep_json = st.integers(min_value=33, max_value=3000).map(Deep)


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def from_schema(schema: dict[str, Any], components: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values shaped by `schema` (well-formed ones and, at every level, junk in their place)."""
    schema = _resolve(schema, components)
    if depth > 4:
        return scalars
    for combinator in ("oneOf", "anyOf", "allOf"):
        if combinator in schema:
            return st.one_of(*(from_schema(part, components, depth + 1) for part in schema[combinator]))
    if "enum" in schema:
        return st.sampled_from([value for value in schema["enum"] if value is not None] or [None])
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        required = set(schema.get("required", []))
        fields = {name: st.one_of(from_schema(sub, components, depth + 1), scalars) for name, sub in properties.items()}
        return st.fixed_dictionaries(
            {name: value for name, value in fields.items() if name in required},
            optional={name: value for name, value in fields.items() if name not in required},
        )
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {}), components, depth + 1), max_size=3)
    if kind == "integer":
        return st.one_of(st.integers(min_value=-5, max_value=1000), st.sampled_from(SPECIAL_NUMBERS))
    if kind == "number":
        return st.one_of(st.decimals(allow_nan=False, allow_infinity=False, places=4).map(str), st.floats())
    if kind == "boolean":
        return st.booleans()
    if schema.get("format") == "uuid":
        return st.uuids().map(str)
    if schema.get("format") in ("date-time", "date"):
        return st.datetimes().map(lambda moment: moment.isoformat())
    if schema.get("format") == "email":
        return st.emails()
    return st.one_of(st.text(max_size=24), st.sampled_from(SPECIAL_TEXT))


class Fuzzer:
    """Sends the requests and keeps count."""

    def __init__(self) -> None:
        self.statuses: Counter[int] = Counter()
        self.failures: list[str] = []

    def send(self, client: APIClient, method: str, url: str, body: bytes | None, content_type: str) -> int:
        # bytes go out unchanged (the annotation says str)
        response = client.generic(method.upper(), url, body or b"", content_type=content_type)  # type: ignore[arg-type]
        self.statuses[response.status_code] += 1
        if response.status_code >= 500:
            self.failures.append(
                f"{method.upper()} {url[:200]} {body[:300] if body else b''!r} -> {response.status_code}"
            )
        return response.status_code

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    @property
    def server_errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status >= 500)


def _encode(body: Any) -> bytes:
    if isinstance(body, Deep):
        return b'{"a": ' + b"[" * body.depth + b"]" * body.depth + b"}"
    return json.dumps(body).encode("utf-8", "surrogatepass")


def _clients(users: dict[str, Any]) -> dict[str, APIClient]:
    clients = {}
    for name, user in users.items():
        client = APIClient(raise_request_exception=False)
        if user is not None:
            client.force_authenticate(user)
        clients[name] = client
    return clients


@pytest.fixture
def population(db, settings):
    """A trader with an enabled simulator config and cached market rules, a viewer, nobody. Whatever an
    endpoint would call over the network (the simulator, Telegram) is refused at once: the answer to
    an unreachable upstream is not what this test is about."""
    from exchanges.models import ExchangeConfig

    settings.SIMULATOR_URL = "http://127.0.0.1:9"
    settings.TELEGRAM_API_URL = "http://127.0.0.1:9"
    settings.EXCHANGE_TIMEOUT_MS = 1000
    settings.NOTIFICATION_TIMEOUT_S = 1

    trader = UserFactory(role="trader")
    viewer = UserFactory(role="viewer")
    config = ExchangeConfig(user=trader, exchange_name="simulator", mode="testnet", is_enabled=True)
    config.set_credentials(api_key="demo-key-0001", api_secret="demo-secret-0001-xxxxxxxxxxxxxxxx", password=None)
    config.save()
    load_rules("simulator")
    return {"anonymous": None, "viewer": viewer, "trader": trader}


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def _exercise(
    fuzzer: Fuzzer,
    clients: dict[str, APIClient],
    path: str,
    method: str,
    operation: dict[str, Any],
    components: dict[str, Any],
    own_id: str,
) -> None:
    """`EXAMPLES` generated requests to one operation, each sent as every role."""
    parameters = operation.get("parameters", [])
    path_names = re.findall(r"{(\w+)}", path)
    query = [p for p in parameters if p.get("in") == "query"]
    content = operation.get("requestBody", {}).get("content", {})
    body_schema = content.get("application/json", {}).get("schema", {})
    shaped = from_schema(body_schema, components) if body_schema else junk_json
    request_body = st.one_of(shaped, junk_json, deep_json)
    path_value = st.one_of(
        st.uuids().map(str),
        st.just(own_id),
        st.sampled_from(["simulator", "1", "30", "99999999999999999999"]),
        st.text(min_size=1, max_size=16),
        st.sampled_from([text for text in SPECIAL_TEXT if text]),
    )

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def exercise(data: st.DataObject) -> None:
        url = path
        for name in path_names:
            value = data.draw(path_value, label=name)
            url = url.replace(f"{{{name}}}", quote(value.encode("utf-8", "surrogatepass"), safe=""))
        params = {}
        for parameter in query:
            if data.draw(st.booleans()):
                value = data.draw(st.one_of(from_schema(parameter.get("schema", {}), components), scalars))
                params[parameter["name"]] = str(value).encode("utf-8", "surrogatepass")
        if params:
            url += "?" + urlencode(params)
        body = None
        content_type = "application/json"
        if body_schema or method in ("post", "put", "patch"):
            choice = data.draw(st.integers(0, 9))
            if choice == 0:
                body = data.draw(st.binary(max_size=64))
                content_type = data.draw(st.sampled_from(["application/json", "text/plain", "x/y"]))
            elif choice == 1:
                body = _encode(data.draw(junk_json))
                content_type = "application/x-www-form-urlencoded"
            else:
                body = _encode(data.draw(request_body))
        for client in clients.values():
            fuzzer.send(client, method, url, body, content_type)  # a 5xx is recorded, the run goes on

    exercise()


def _exercise_webhook(fuzzer: Fuzzer, client: APIClient, users: list[Any]) -> None:
    """Shaped alerts with junk in their fields, and junk bodies; each must be answered below 500 and stored."""
    fields = [("tv", "symbol"), ("tv", "entry_price"), ("tv", "timeframe"), ("execution_intent", "type")]
    fields.append(("", "secret"))

    @settings(max_examples=EXAMPLES * 20, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def webhook(data: st.DataObject) -> None:
        user = data.draw(st.sampled_from(users))
        body: Any = alert(user.webhook_secret, strategy_info={"trade_id": data.draw(st.text(max_size=8))})
        for section, name in data.draw(st.lists(st.sampled_from(fields), max_size=3)):
            target = body[section] if section else body
            target[name] = data.draw(st.one_of(scalars, junk_json))
        if data.draw(st.integers(0, 4)) == 0:
            body = data.draw(st.one_of(junk_json, deep_json))
        raw = _encode(body) if data.draw(st.integers(0, 9)) else data.draw(st.binary(max_size=128))
        content_type = data.draw(st.sampled_from(["application/json", "text/plain"]))
        before = WebhookSignal.objects.count()
        status = fuzzer.send(client, "post", f"/api/webhook/{user.pk}", raw, content_type)
        if WebhookSignal.objects.count() != before + 1:
            fuzzer.failures.append(f"webhook {raw[:200]!r} -> {status}, not stored")

    webhook()


def test_no_input_to_any_endpoint_is_a_5xx(population):
    anonymous = APIClient(raise_request_exception=False)
    schema = anonymous.get("/api/schema/?format=json").json()
    components = schema.get("components", {}).get("schemas", {})
    operations = _operations(schema)
    assert len(operations) > 20, "the schema lists the API"
    clients = _clients(population)
    fuzzer = Fuzzer()
    trader = population["trader"]
    for path, method, operation in operations:
        _exercise(fuzzer, clients, path, method, operation, components, str(trader.pk))
    _exercise_webhook(fuzzer, clients["anonymous"], [trader, population["viewer"]])
    print(
        f"\nfuzz: {fuzzer.total} requests over {len(operations)} operations and the webhook, "
        f"5xx={fuzzer.server_errors}, statuses {dict(sorted(fuzzer.statuses.items()))}"
    )
    by_operation = Counter(
        failure.split(" ", 2)[0] + " " + failure.split(" ", 2)[1].split("?")[0] for failure in fuzzer.failures
    )
    assert not fuzzer.failures, f"{by_operation}\n" + "\n".join(fuzzer.failures[:20])
