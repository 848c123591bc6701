"""Airflow provider metadata: registers the `letsjobit` connection type and its hook."""


def get_provider_info() -> dict:
    return {
        "package-name": "letsjobit-pipeline",
        "name": "LetsJobIt",
        "description": "LetsJobIt API v2 hook for Airflow",
        "versions": ["0.1.0"],
        "connection-types": [
            {"connection-type": "letsjobit", "hook-class-name": "letsjobit.hooks.LetsJobItHook"},
        ],
    }
