"""Airflow provider metadata: registers the `letsjobit` connection type, its hook and its form.

Airflow 3.2+ reads the connection form declaratively from here (``conn-fields`` are stored in the
connection's extras, ``ui-field-behaviour`` relabels/hides the standard fields), without importing the
hook. Defaults shown in the form are the client's own, so they are stated once.
"""

from __future__ import annotations

from dataclasses import MISSING, fields


def _client_defaults() -> dict:
    from letsjobit.api.settings import ClientSettings

    return {f.name: f.default for f in fields(ClientSettings) if f.default is not MISSING}


def get_provider_info() -> dict:
    from letsjobit.api.settings import KEY_PLACEMENTS

    defaults = _client_defaults()
    return {
        "package-name": "letsjobit-pipeline",
        "name": "LetsJobIt",
        "description": "LetsJobIt API v2 hook for Airflow",
        "versions": ["0.1.0"],
        "connection-types": [
            {
                "connection-type": "letsjobit",
                "hook-class-name": "letsjobit.airflow.hooks.LetsJobItHook",
                "hook-name": "LetsJobIt",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "login", "port"],
                    "relabeling": {"host": "Base URL", "password": "API key"},
                    "placeholders": {
                        "host": "https://app.letsjobit.com/api/v2",
                        "password": "API key from the LetsJobIt app",
                    },
                },
                "conn-fields": {
                    "key_placement": {
                        "label": "Send the API key as",
                        "description": "auto: the Authorization header first; on a 401 the same request once "
                        "with the key in the query string, and whichever worked is remembered for the key. "
                        "header: Authorization: Bearer <key> only. query: ?api_key=<key> only (the parameter "
                        "name below). The key is redacted from every log either way.",
                        "schema": {
                            "type": ["string", "null"],
                            "enum": list(KEY_PLACEMENTS),
                            "default": defaults["key_placement"],
                        },
                    },
                    "query_key_param": {
                        "label": "Query parameter for the key",
                        "description": "Used when the key goes in the query string (auto or query).",
                        "schema": {"type": ["string", "null"], "default": defaults["query_key_param"]},
                    },
                    "requests_per_window": {
                        "label": "Requests per rate window",
                        "description": "The API key's rate limit (the reference says 100 per 10 s).",
                        "schema": {
                            "type": ["integer", "null"],
                            "minimum": 1,
                            "default": defaults["requests_per_window"],
                        },
                    },
                    "window_seconds": {
                        "label": "Rate window (seconds)",
                        "schema": {
                            "type": ["number", "null"],
                            "minimum": 0.1,
                            "default": defaults["window_seconds"],
                        },
                    },
                    "timeout": {
                        "label": "Request timeout (seconds)",
                        "schema": {
                            "type": ["number", "null"],
                            "minimum": 1,
                            "default": defaults["timeout_seconds"],
                        },
                    },
                    "max_concurrency": {
                        "label": "Concurrent page requests",
                        "description": "Threads fetching pages; the rate budget sets the pace.",
                        "schema": {
                            "type": ["integer", "null"],
                            "minimum": 1,
                            "maximum": 64,
                            "default": defaults["max_concurrency"],
                        },
                    },
                    "allow_insecure_http": {
                        "label": "Allow plain http:// (not loopback)",
                        "description": "Off: plain http is refused except to localhost, so the key never "
                        "crosses a network unencrypted.",
                        "schema": {"type": ["boolean", "null"], "default": defaults["allow_insecure_http"]},
                    },
                    "rate_budget_url": {
                        "label": "Shared rate budget (Redis URL)",
                        "description": "redis://:PASSWORD@host:6379/2: every host's workers draw on one budget "
                        "for the key there. Empty: LETSJOBIT_RATE_BUDGET_URL, else a budget file per host.",
                        # A password format: the UI hides the value and Airflow treats it as sensitive.
                        "schema": {"type": ["string", "null"], "format": "password"},
                    },
                },
            }
        ],
        # Lineage: the asset URIs include/letsjobit/airflow/lineage.py reports, and how OpenLineage names them.
        "asset-uris": [
            {
                "schemes": ["letsjobit"],
                "handler": None,  # kept as built
                "to_openlineage_converter": "letsjobit.airflow.lineage.api_to_openlineage",
            },
            {
                "schemes": ["duckdb"],
                "handler": None,  # kept as built
                "to_openlineage_converter": "letsjobit.airflow.lineage.warehouse_to_openlineage",
            },
        ],
    }
