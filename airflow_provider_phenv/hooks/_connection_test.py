"""
The connection test: what Airflow's Test button and ``airflow connections test`` run.

It checks what the operators need rather than that some request succeeds: the key's scopes (a
key can read its own record, docs/posthog-api.md §2.1), and that the connection's project is set
and readable (one project-scoped GET). It neither retries nor waits long, so an unreachable host
is reported in seconds.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from airflow_provider_phenv.errors import PostHogAuthError, PostHogNotFoundError, PostHogTransportError
from airflow_provider_phenv.hooks import calls
from airflow_provider_phenv.hooks.calls import ApiCall
from airflow_provider_phenv.hooks.options import PostHogSettings

if TYPE_CHECKING:
    from airflow_provider_phenv.hooks.posthog import PostHogHook

#: What the operators and sensors need from a personal API key.
REQUIRED_SCOPES = ("batch_export:read", "batch_export:write", "dashboard:read", "dashboard:write")
#: What dashboard tasks that give access (editors, viewers, default_access) need besides: they fail
#: before any write without them; other tasks never need them.
ACCESS_SCOPES = ("access_control:write", "organization:read", "organization_member:read")
ACCESS_TASKS = "dashboard tasks that set editors, viewers or default_access"
#: Seconds the connection test waits to connect and for each answer.
TEST_CONNECTION_TIMEOUT = 5.0


def check_connection(hook: PostHogHook) -> tuple[bool, str]:
    """``(ok, message)`` for the hook's connection; the message names every missing piece."""
    try:
        settings = hook.settings
        # A button press must answer quickly: no retries, and a short wait for connecting.
        hook.__dict__["settings"] = replace(
            settings, max_retries=0, timeout=min(settings.timeout, TEST_CONNECTION_TIMEOUT)
        )
        return _check(hook, settings)
    except PostHogTransportError as error:
        return False, (
            f"Could not reach PostHog at {settings.host_label} within {TEST_CONNECTION_TIMEOUT:g} s: "
            f"{error.detail}. Check the connection's host and port, and that this machine can reach it."
        )
    except Exception as error:
        return False, str(error)
    finally:
        hook.close()
        hook.__dict__.pop("settings", None)


def _check(hook: PostHogHook, settings: PostHogSettings) -> tuple[bool, str]:
    where = f"PostHog at {settings.host_label}"
    problems: list[str] = []
    key = read_own_key(hook)  # raises on an unreachable host or a rejected key
    scopes = key.get("scopes") if key else None
    if isinstance(scopes, list):
        missing = [scope for scope in REQUIRED_SCOPES if not grants_scope(scopes, scope)]
        if missing:
            problems.append(
                f"the personal API key lacks the scope{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)} (it has {', '.join(scopes) or 'none'}): the operators need "
                f"{', '.join(REQUIRED_SCOPES)}; edit the key in PostHog (Settings > Personal API keys)"
            )
    project = settings.project_id
    if project is None:
        problems.append(
            f"connection {settings.conn_id!r} has no extra 'project_id': set it to the project "
            "(environment) id, the number after /project/ in PostHog's URLs"
        )
    else:
        readable = (
            None if not isinstance(scopes, list) else [s for s in REQUIRED_SCOPES if grants_scope(scopes, s)]
        )
        # Read something the key may read, so a missing scope is not reported twice.
        if readable is None or "batch_export:read" in readable:
            check = ApiCall(
                path="batch_exports/", params={"limit": 1}, resource="batch exports", expect=calls.page()
            )
        elif "dashboard:read" in readable:
            check = ApiCall(
                path="dashboards/", params={"limit": 1}, resource="dashboards", expect=calls.page()
            )
        else:
            check = None
        if check is not None:
            try:
                hook._call(replace(check, project_id=project))
            except (PostHogAuthError, PostHogNotFoundError) as error:
                problems.append(f"project {project} cannot be read: {error}")
    if problems:
        return False, f"{where}: " + "; ".join(problems) + "."
    label = f" with key {key['label']!r}" if key and key.get("label") else ""
    scope_note = "its scopes cover" if key else "its scopes could not be read (older PostHog); it needs"
    access_note = ""
    if isinstance(scopes, list):
        lacking = [scope for scope in ACCESS_SCOPES if not grants_scope(scopes, scope)]
        if lacking:
            access_note = f" Only {ACCESS_TASKS} also need {', '.join(lacking)}, which it lacks."
    return True, (
        f"Connected to {where}{label}: project {project} is readable and {scope_note} "
        f"{', '.join(REQUIRED_SCOPES)}.{access_note}"
    )


def read_own_key(hook: PostHogHook) -> dict[str, Any] | None:
    """The key's own record (label, scopes), or ``None`` on a PostHog that cannot show it."""
    call = ApiCall(path="personal_api_keys/@current/", resource="the personal API key", global_path=True)
    try:
        return hook._call(call)
    except PostHogNotFoundError:
        return None  # an older PostHog without this endpoint
    except PostHogAuthError as error:
        if error.status_code == 403 and "personal api key access" in (error.detail or "").lower():
            return None
        raise


def grants_scope(scopes: list[str], required: str) -> bool:
    """PostHog's rule: ``*`` grants every scope, ``<object>:write`` also grants ``<object>:read``."""
    obj, _, action = required.partition(":")
    return "*" in scopes or required in scopes or (action == "read" and f"{obj}:write" in scopes)
