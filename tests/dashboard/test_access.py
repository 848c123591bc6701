"""Who may look: the launcher refuses to publish beyond loopback without a sign-in, and with the OIDC
sign-in configured the app shows nothing until an allowed viewer has signed in."""

from __future__ import annotations

import pytest
from letsjobit.dashboard import access, server
from streamlit.testing.v1 import AppTest

from tests.dashboard.conftest import APP

AUTH = {
    "redirect_uri": "http://localhost:8501/oauth2callback",
    "cookie_secret": "a-long-random-cookie-secret-for-the-tests-only",
    "client_id": "letsjobit-dashboard",
    "client_secret": "client-secret-for-the-tests-only",
    "server_metadata_url": "http://127.0.0.1:8080/realms/letsjobit/.well-known/openid-configuration",
}


def launch(argv: list[str], monkeypatch, secrets_file) -> list[str]:
    """What ``python -m letsjobit.dashboard ARGV`` would exec (nothing is executed)."""
    captured: list[str] = []
    monkeypatch.setattr(access, "SECRETS_FILE", secrets_file)
    monkeypatch.setattr(server.os, "execv", lambda path, args: captured.extend(args))
    server.main(argv)
    return captured


def write_secrets(path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize("address", ["0.0.0.0", "192.0.2.10", "::", "letsjobit.dashboard.example.com"])  # noqa: S104
def test_the_launcher_refuses_a_non_loopback_address_without_a_sign_in(address, monkeypatch, tmp_path):
    with pytest.raises(access.ExposureRefused, match="without a sign-in"):
        launch(["--address", address], monkeypatch, tmp_path / "missing.toml")


def test_a_container_listening_everywhere_but_published_on_loopback_starts(monkeypatch, tmp_path):
    argv = launch(
        ["--address", "0.0.0.0", "--published-address", "127.0.0.1"],  # noqa: S104 - inside its container
        monkeypatch,
        tmp_path / "missing.toml",
    )
    assert argv[argv.index("--server.address") + 1] == "0.0.0.0"  # noqa: S104


def test_a_container_published_beyond_loopback_is_refused_without_a_sign_in(monkeypatch, tmp_path):
    with pytest.raises(access.ExposureRefused):
        launch(["--address", "0.0.0.0", "--published-address", "0.0.0.0"], monkeypatch, tmp_path / "x")  # noqa: S104


def test_an_oidc_sign_in_in_the_secrets_file_allows_publishing_and_reaches_streamlit(monkeypatch, tmp_path):
    body = "\n".join(f'{key} = "{value}"' for key, value in AUTH.items())
    secrets = write_secrets(tmp_path / ".streamlit" / "secrets.toml", f"[auth]\n{body}\n")
    argv = launch(["--address", "0.0.0.0"], monkeypatch, secrets)  # noqa: S104
    assert argv[argv.index("--secrets.files") + 1] == str(secrets)


def test_an_incomplete_auth_table_is_no_sign_in(monkeypatch, tmp_path):
    secrets = write_secrets(tmp_path / "secrets.toml", '[auth]\nredirect_uri = "http://x/oauth2callback"\n')
    with pytest.raises(access.ExposureRefused):
        launch(["--address", "0.0.0.0"], monkeypatch, secrets)  # noqa: S104


def test_an_authenticating_proxy_in_front_is_the_operators_explicit_choice(monkeypatch, tmp_path):
    argv = launch(["--address", "0.0.0.0", "--behind-auth-proxy"], monkeypatch, tmp_path / "missing.toml")  # noqa: S104
    assert "streamlit" in argv


def test_named_providers_are_a_sign_in_too():
    shared = {"redirect_uri": AUTH["redirect_uri"], "cookie_secret": AUTH["cookie_secret"]}
    provider = {k: AUTH[k] for k in access.PROVIDER_SETTINGS}
    assert access.sign_in({**shared, "keycloak": provider}) == access.SignIn("keycloak")
    assert access.sign_in(AUTH) == access.SignIn(None)
    assert access.sign_in({**shared}) is None and access.sign_in(None) is None


@pytest.mark.parametrize(
    ("email", "viewers", "allowed"),
    [
        ("ana@example.com", None, True),
        ("ana@example.com", ["ana@example.com"], True),
        ("Ana@Example.com", ["@example.com"], True),
        ("eve@evil.test", ["@example.com", "bob@example.com"], False),
        ("eve@notexample.com", ["@example.com"], False),
        (None, ["@example.com"], False),
    ],
)
def test_the_viewers_list_admits_addresses_and_domains(email, viewers, allowed):
    assert access.may_view(email, viewers) is allowed


def open_signed(user: dict | None, viewers: list[str] | None = None) -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=60)
    app.secrets["auth"] = AUTH
    if viewers is not None:
        app.secrets["dashboard"] = {"viewers": viewers}
    if user is not None:
        app.user = user
    return app.run()


def test_with_the_sign_in_configured_nothing_shows_until_the_viewer_signs_in(warehouse):
    app = open_signed({"is_logged_in": False})
    assert not app.exception
    assert [button.label for button in app.button] == ["Sign in"]
    assert not app.metric and not app.sidebar.multiselect


def test_a_signed_in_viewer_on_the_list_sees_the_dashboard(warehouse):
    app = open_signed({"is_logged_in": True, "email": "ana@example.com"}, viewers=["@example.com"])
    assert not app.exception and not app.error
    assert app.metric, "the overview's KPI tiles"
    assert "Sign out" in [button.label for button in app.sidebar.button]


def test_a_signed_in_viewer_off_the_list_sees_nothing(warehouse):
    app = open_signed({"is_logged_in": True, "email": "eve@evil.test"}, viewers=["@example.com"])
    assert [e.value for e in app.error] == ["eve@evil.test is not on this dashboard's list of viewers."]
    assert not app.metric
