"""Reading the Airflow connection: host forms, JSON and URI connections, clear config errors."""

from __future__ import annotations

import json

import pytest

from airflow_provider_phenv.errors import PostHogConnectionConfigError
from airflow_provider_phenv.hooks.posthog import PostHogHook
from airflow_provider_phenv.hooks.settings import normalize_host


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        (None, None, "https://us.posthog.com"),
        ("", None, "https://us.posthog.com"),
        ("eu.posthog.com", None, "https://eu.posthog.com"),
        ("https://eu.posthog.com/", None, "https://eu.posthog.com"),
        ("  https://us.posthog.com//  ", None, "https://us.posthog.com"),
        ("posthog.example.com", 8443, "https://posthog.example.com:8443"),
        ("http://127.0.0.1:8010", None, "http://127.0.0.1:8010"),
        ("http://127.0.0.1", 8010, "http://127.0.0.1:8010"),
        ("https://example.com/posthog/", None, "https://example.com/posthog"),
        ("https://eu.i.posthog.com", None, "https://eu.posthog.com"),
    ],
)
def test_host_is_normalised(host, port, expected):
    assert normalize_host(host, port) == expected


def test_host_with_another_scheme_is_rejected():
    with pytest.raises(PostHogConnectionConfigError, match="ftp://x"):
        normalize_host("ftp://x")


def _set_conn(monkeypatch, value: str, conn_id: str = "posthog_default") -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", value)


def test_json_connection(monkeypatch):
    _set_conn(
        monkeypatch,
        json.dumps(
            {
                "conn_type": "posthog",
                "host": "https://eu.posthog.com/",
                "password": "phx_secret",
                "extra": {"project_id": "12345", "api_prefix": "projects", "timeout": 12, "max_retries": 2},
            }
        ),
    )
    settings = PostHogHook().settings
    assert (settings.base_url, settings.project_id, settings.api_prefix) == (
        "https://eu.posthog.com",
        "12345",
        "projects",
    )
    assert (settings.timeout, settings.max_retries, settings.api_key) == (12.0, 2, "phx_secret")


def test_uri_connection_with_string_extras(monkeypatch):
    _set_conn(monkeypatch, "posthog://:phx_secret@eu.posthog.com/?project_id=42&timeout=7&max_retries=1")
    settings = PostHogHook().settings
    assert settings.base_url == "https://eu.posthog.com"
    assert (settings.project_id, settings.timeout, settings.max_retries) == ("42", 7.0, 1)
    assert settings.api_prefix == "projects"  # PostHog's canonical prefix, the default


def test_uri_connection_with_http_scheme_and_port(monkeypatch):
    _set_conn(monkeypatch, "posthog://http://:phx_secret@127.0.0.1:8010/?project_id=%40current")
    settings = PostHogHook().settings
    assert (settings.base_url, settings.project_id) == ("http://127.0.0.1:8010", "@current")


def test_hook_arguments_override_connection_extras(monkeypatch):
    _set_conn(monkeypatch, "posthog://:k@us.posthog.com/?timeout=7&max_retries=1")
    settings = PostHogHook(timeout=3, max_retries=0).settings
    assert (settings.timeout, settings.max_retries) == (3.0, 0)


def test_missing_key_names_the_connection(monkeypatch):
    _set_conn(monkeypatch, json.dumps({"conn_type": "posthog", "host": "us.posthog.com"}), "ph_nokey")
    with pytest.raises(PostHogConnectionConfigError, match="'ph_nokey' has no personal API key"):
        _ = PostHogHook("ph_nokey").settings


def test_missing_project_id_is_a_clear_error_before_any_request(monkeypatch):
    _set_conn(monkeypatch, "posthog://:k@us.posthog.com")
    with pytest.raises(PostHogConnectionConfigError, match="no extra 'project_id'"):
        PostHogHook().get_batch_export("018f2c3e-8d4a-7b1e-9c2d-3e4f5a6b7c8d")


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("posthog://:k@us.posthog.com/?api_prefix=v2", "api_prefix must be one of environments, projects"),
        ("posthog://:k@us.posthog.com/?timeout=soon", "'timeout' must be a finite number > 0, got 'soon'"),
        ("posthog://:k@us.posthog.com/?max_retries=-1", "'max_retries' must be a finite integer >= 0"),
        ("posthog://:k@us.posthog.com/?project_id=abc", "Invalid project_id 'abc'"),
    ],
)
def test_bad_extras_are_named(monkeypatch, uri, message):
    _set_conn(monkeypatch, uri)
    with pytest.raises(PostHogConnectionConfigError, match=message):
        _ = PostHogHook().settings


def test_plain_http_to_a_remote_host_is_refused(monkeypatch):
    _set_conn(monkeypatch, "posthog://http://:phx_secret@posthog.internal:8000/?project_id=1")
    with pytest.raises(PostHogConnectionConfigError, match="refusing to send the API key over plain http"):
        _ = PostHogHook().settings


def test_plain_http_to_a_remote_host_when_allowed(monkeypatch):
    _set_conn(
        monkeypatch,
        "posthog://http://:phx_secret@posthog.internal:8000/?project_id=1&allow_insecure_http=true",
    )
    assert PostHogHook().settings.base_url == "http://posthog.internal:8000"


def test_key_is_not_in_reprs(monkeypatch):
    _set_conn(monkeypatch, "posthog://:phx_very_secret@us.posthog.com/?project_id=1")
    hook = PostHogHook()
    assert "phx_very_secret" not in repr(hook)
    assert "phx_very_secret" not in repr(hook.settings)


@pytest.mark.parametrize("kwargs", [{"max_retries": -1}, {"timeout": 0}, {"max_retries": True}])
def test_bad_hook_arguments(kwargs):
    with pytest.raises(ValueError, match="Invalid"):
        PostHogHook(**kwargs)


def test_connection_form_default_prefix_is_the_hooks_default():
    from airflow_provider_phenv import get_provider_info
    from airflow_provider_phenv.hooks.settings import DEFAULT_API_PREFIX

    form = get_provider_info()["connection-types"][0]
    assert form["conn-fields"]["api_prefix"]["schema"]["default"] == DEFAULT_API_PREFIX == "projects"
    assert form["ui-field-behaviour"]["placeholders"]["api_prefix"] == "projects"
