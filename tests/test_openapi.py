"""The OpenAPI document: complete (every route is in it) and true (schemathesis against the app)."""

from __future__ import annotations

import re
import shutil
import tempfile

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import negative_data_rejection, positive_data_acceptance
from schemathesis.core.parameters import ParameterLocation

from casvault.config import Config
from tests.conftest import ADMIN_TOKEN, INGEST_TOKEN, SECRET, make_png
from web import create_app

# NOTE: schemathesis loads the schema when the module is imported, before
# fixtures exist, so this app gets its own temporary root (removed at the end).
_ROOT = tempfile.mkdtemp(prefix="casvault-openapi-")
APP = create_app(Config(root=_ROOT, secret_key=SECRET, admin_token=ADMIN_TOKEN, ingest_token=INGEST_TOKEN, thumb_size=64))
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def _seeded_root():
    """A few real records so that generated requests also meet existing data; the root is removed after."""
    client = APP.test_client()
    for seed in range(3):
        resp = client.post(
            "/api/v1/ingest",
            data={"file": (__import__("io").BytesIO(make_png(seed=seed)), "a.png"), "owner": "anon-" + "a" * 32},
            headers={"Authorization": f"Bearer {INGEST_TOKEN}"},
        )
        assert resp.status_code == 201
    yield
    shutil.rmtree(_ROOT, ignore_errors=True)


def _headers(path: str) -> dict[str, str]:
    headers = {"X-Requested-With": "XMLHttpRequest"}
    if path.startswith("/api/v1/admin"):
        headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
    elif path in ("/api/v1/ingest", "/api/v1/staged/release") or path.endswith("/stage"):
        headers["Authorization"] = f"Bearer {INGEST_TOKEN}"
    return headers


@schema.parametrize()
@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None)
def test_api_conforms_to_its_document(case):
    """No 5xx, every answer matches the document, bad input is refused and good input accepted."""
    excluded = []
    # NOTE: narrow exceptions, each a limit of what a schema can say: an
    # upload's bytes must be a real image (random bytes get 415); a cursor is
    # opaque (only next_cursor values are valid); ComfyUI staging needs a
    # configured folder; a query string has no types, so a "negative" object
    # or array there may serialise to nothing.
    if case.path.endswith(("/upload", "/ingest", "/stage", "/staged/release")) or (case.query or {}).get("cursor"):
        excluded.append(positive_data_acceptance)
    if case.meta is not None and case.meta.is_negative_at(ParameterLocation.QUERY):
        excluded.append(negative_data_rejection)
    case.call_and_validate(headers=_headers(case.path), excluded_checks=excluded)


def test_every_api_route_is_documented():
    """Each Flask rule under /api/v1 and /s, and the ops routes (method by method), appears in the document."""
    doc = APP.test_client().get("/api/v1/openapi.json").get_json()
    documented = {(path, method.upper()) for path, item in doc["paths"].items() for method in item}
    served = set()
    for rule in APP.url_map.iter_rules():
        if not rule.rule.startswith(("/api/v1/", "/s/")) and rule.rule not in ("/healthz", "/readyz", "/metrics"):
            continue
        path = re.sub(r"<(?:[^<>]*:)?(\w+)>", r"{\1}", rule.rule)  # <string(length=32):rid> → {rid}
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            served.add((path, method))
    assert served - documented == set()
    assert documented - served == set()
    assert len(served) >= 40


def test_error_schema_is_shared():
    """Every documented 4xx/5xx answer uses the one error body."""
    doc = APP.test_client().get("/api/v1/openapi.json").get_json()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for status, resp in op["responses"].items():
                if status.startswith(("4", "5")) and not path.startswith("/s/{token}") or status in ("401", "405"):
                    assert resp == {"$ref": f"#/components/responses/E{status}"}, (path, method, status)
