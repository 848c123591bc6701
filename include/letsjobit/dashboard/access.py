"""Who may look at the dashboard: it shows driver, customer and site names.

Two rules, one home:
- Listening beyond loopback needs a sign-in in front: Streamlit's own OIDC login (``st.login``), on
  when ``.streamlit/secrets.toml`` has an ``[auth]`` table with a provider, or an authenticating
  reverse proxy the operator vouches for (``--behind-auth-proxy``). Otherwise the launcher refuses to
  start (see ``check_exposure``), because a warning scrolls by while the names are already exposed.
- With the sign-in on, every page load requires a signed-in viewer, and when ``[dashboard] viewers``
  lists addresses (``"ana@example.com"``) or domains (``"@example.com"``), only those.
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from letsjobit import config

SECRETS_FILE = config.PROJECT_ROOT / ".streamlit" / "secrets.toml"
PROVIDER_SETTINGS = ("client_id", "client_secret", "server_metadata_url")
SHARED_SETTINGS = ("redirect_uri", "cookie_secret")


@dataclass(frozen=True)
class SignIn:
    """The OIDC provider to sign in with: ``None`` is the unnamed one of ``[auth]`` itself."""

    provider: str | None


def sign_in(auth: Mapping[str, Any] | None) -> SignIn | None:
    """The sign-in an ``[auth]`` table configures, or None when it configures none."""
    if not isinstance(auth, Mapping) or not all(auth.get(name) for name in SHARED_SETTINGS):
        return None
    if all(auth.get(name) for name in PROVIDER_SETTINGS):
        return SignIn(None)
    for name, section in auth.items():
        if isinstance(section, Mapping) and all(section.get(key) for key in PROVIDER_SETTINGS):
            return SignIn(str(name))
    return None


def read_secrets(path: Path | None = None) -> dict[str, Any]:
    path = path or SECRETS_FILE
    if not path.is_file():
        return {}
    with path.open("rb") as file:
        return tomllib.load(file)


def may_view(email: str | None, viewers: list[str] | None) -> bool:
    """Whether a signed-in viewer is allowed: anyone when no list is given, else by address or @domain."""
    if not viewers:
        return True
    if not email:
        return False
    email = email.strip().lower()
    for entry in viewers:
        entry = entry.strip().lower()
        if entry == email or (entry.startswith("@") and email.endswith(entry)):
            return True
    return False


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class ExposureRefused(SystemExit):
    """The dashboard would be reachable beyond loopback with nobody asked to sign in."""


def check_exposure(
    published_address: str, secrets: Mapping[str, Any], behind_auth_proxy: bool = False
) -> str:
    """How the dashboard is protected where it is published; raises ExposureRefused when it is not."""
    if is_loopback(published_address):
        return f"listening on loopback ({published_address}) only"
    if sign_in(secrets.get("auth")) is not None:
        return f"published on {published_address}; viewers sign in with OIDC (.streamlit/secrets.toml [auth])"
    if behind_auth_proxy:
        return f"published on {published_address}; sign-in left to the authenticating reverse proxy in front"
    raise ExposureRefused(
        f"Refusing to publish the dashboard on {published_address} without a sign-in: it shows driver, "
        "customer and site names. Either configure Streamlit's OIDC login in .streamlit/secrets.toml "
        "([auth], see docs/operations.md), or put an authenticating reverse proxy in front and pass "
        "--behind-auth-proxy, or keep it on 127.0.0.1."
    )
