"""How `make dashboard` serves the app (dashboard/server.py); tests/deploy checks the compose service."""

from __future__ import annotations

from letsjobit.dashboard import server


def streamlit_options(argv: list[str]) -> dict[str, str]:
    """--name value options after `streamlit run <app>`."""
    rest = argv[argv.index("run") + 2 :]
    return dict(zip(rest[::2], rest[1::2], strict=True))


def test_make_dashboard_serves_viewers_on_loopback_by_default():
    argv = server.command()

    assert argv[argv.index("run") + 1] == str(server.APP)
    options = streamlit_options(argv)
    assert options["--server.address"] == "127.0.0.1" and options["--server.port"] == "8501"
    assert options["--server.headless"] == "true" and options["--browser.gatherUsageStats"] == "false"
    assert options["--client.toolbarMode"] == "viewer"
