"""Operators that provision PostHog dashboards and their collaborators as code."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_phenv.errors import (
    PostHogBadRequestError,
    PostHogError,
    PostHogWriteOutcomeUnknownError,
)
from airflow_provider_phenv.field_checks import extend, is_known, one_of, optional
from airflow_provider_phenv.links import PostHogDashboardLink
from airflow_provider_phenv.operators.base import PostHogBaseOperator
from airflow_provider_phenv.payloads import dashboard_payload
from airflow_provider_phenv.validation import COLLABORATOR_LEVELS, check_positive_int, check_uuid
from airflow_provider_phenv.waits import read_state, write_state

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_phenv.hooks.posthog import PostHogHook

IF_EXISTS_CHOICES = ("reuse", "update", "fail", "create")
#: Restriction level at which a dashboard takes collaborators ("only collaborators can edit").
COLLABORATORS_LEVEL = 37
# Fields of the create payload that only apply when a dashboard is created.
_CREATE_ONLY = ("name", "use_template", "use_dashboard")
_STATE_KEY = "posthog_create_dashboard"
# PostHog's search filter takes at most 200 characters; longer names are matched client-side.
_MAX_SEARCH = 200
# PostHog's 400 details for a collaborator who needs no adding (docs/posthog-api.md §7.3).
ALREADY_COLLABORATOR = "User already is a collaborator."
INHERENT_ACCESS = "Cannot add collaborators that already have inherent access"
LOWEST_RESTRICTION = "Cannot add collaborators to a dashboard on the lowest restriction level"


class PostHogDashboardExistsError(PostHogError, AirflowFailException):
    """``if_exists="fail"`` and a dashboard with the name already exists. Not retried."""


def _check_collaborators(name: str, value: Any) -> list[str]:
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"Invalid {name} {value!r}: expected a list of user UUIDs.")
    return [check_uuid(name, item) for item in value]


class PostHogCreateDashboardOperator(PostHogBaseOperator):
    """
    Create a PostHog dashboard, or reuse the one that already has this name.

    With ``if_exists="reuse"`` (the default) a retried or re-run task never makes a second
    dashboard: an existing, non-deleted dashboard with exactly this name is returned instead, with
    a warning when its fields differ from this task's or several dashboards have the name. With
    ``if_exists="update"`` the existing dashboard is made to match: only the fields that differ
    are sent (PATCH), and the log lists them. If PostHog's answer to the create is lost, the
    operator looks the dashboard up rather than creating it again.

    Collaborators need ``restriction_level=37`` on the dashboard *and* PostHog's paid
    access-control feature in the organization. Give ``collaborators`` here and the dashboard is
    created at level 37 (unless told otherwise) and they are added right after it.

    :param name: the dashboard's name. (templated)
    :param description: its description. (templated)
    :param pinned: pin it in the dashboards list.
    :param tags: tags (a paid PostHog feature). (templated)
    :param restriction_level: 21 (everyone in the project can edit) or 37 (only collaborators).
    :param use_template: create from this PostHog template key. (templated)
    :param use_dashboard: duplicate this dashboard id. (templated)
    :param if_exists: ``"reuse"``, ``"update"`` (reuse and make its fields match), ``"fail"``
        or ``"create"`` (always make a new one).
    :param fields: other dashboard fields PostHog accepts (``filters``...). (templated)
    :param collaborators: user UUIDs to give edit access; implies ``restriction_level=37``.
        (templated)
    :param posthog_conn_id: Airflow connection id of type ``posthog``. (templated)
    :param project_id: PostHog project id; default: the connection's. (templated)
    :return: ``{"id", "name", "url", "created"}``, plus ``"updated"`` (the changed fields) with
        ``if_exists="update"`` and ``"collaborators"`` (their UUIDs) when given.
    """

    template_fields: Sequence[str] = (
        *PostHogBaseOperator.template_fields,
        "name",
        "description",
        "tags",
        "use_template",
        "use_dashboard",
        "fields",
        "collaborators",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"fields": "json"}
    field_checks = extend(
        PostHogBaseOperator.field_checks,
        if_exists=one_of(IF_EXISTS_CHOICES),
        collaborators=optional(_check_collaborators),
    )
    operator_extra_links = (PostHogDashboardLink(),)
    #: Seconds to wait before each further look-up of a create whose answer was lost (3 look-ups,
    #: ~10 s in all): a create may commit after the client's read timeout.
    lost_create_waits: ClassVar[tuple[float, ...]] = (3.0, 7.0)
    # The dashboard's own fields, checked together by ``dashboard_payload``.
    payload_fields = (
        "name",
        "description",
        "pinned",
        "tags",
        "restriction_level",
        "use_template",
        "use_dashboard",
    )

    def __init__(
        self,
        *,
        name: str,
        description: str | None = None,
        pinned: bool | None = None,
        tags: list[str] | None = None,
        restriction_level: int | None = None,
        use_template: str | None = None,
        use_dashboard: int | str | None = None,
        if_exists: str = "reuse",
        fields: dict[str, Any] | None = None,
        collaborators: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if collaborators is not None and restriction_level is None:
            restriction_level = COLLABORATORS_LEVEL
        if collaborators is not None and str(restriction_level) != str(COLLABORATORS_LEVEL):
            raise ValueError(
                f"collaborators need restriction_level={COLLABORATORS_LEVEL} (only collaborators can "
                f"edit); got restriction_level={restriction_level!r}. PostHog refuses collaborators on "
                "a dashboard everyone in the project can edit."
            )
        self.name = name
        self.description = description
        self.pinned = pinned
        self.tags = tags
        self.collaborators = collaborators
        self.restriction_level = restriction_level
        self.use_template = use_template
        self.use_dashboard = use_dashboard
        self.if_exists = if_exists
        self.fields = fields or {}
        self.dashboard_url: str | None = None
        self.check_literal_fields()

    def check_combination(self, values: dict[str, Any]) -> None:
        """The dashboard's fields are checked as one payload, once every one of them is known."""
        if all(is_known(getattr(self, name)) for name in ("fields", *self.payload_fields)):
            values["payload"] = dashboard_payload(
                **{name: getattr(self, name) for name in self.payload_fields}, **self.fields
            )

    def execute(self, context: Context) -> dict[str, Any]:
        values = self.checked_fields()
        payload = values["payload"]
        project_id = values["project_id"]
        name = payload["name"]
        # Looked up in every mode: "create" needs the ids that existed before, to recognise its
        # own dashboard if PostHog's answer to the create is lost.
        existing = self._find_by_name(name, project_id)
        earlier_try = self._created_by_an_earlier_try(context, name, project_id, existing)
        if earlier_try is not None:
            self.log.info("An earlier try created PostHog dashboard %s named %r.", earlier_try["id"], name)
            return self._result(earlier_try, project_id, created=True)
        known_ids = {dashboard["id"] for dashboard in existing}
        if existing and self.if_exists in ("reuse", "update"):
            return self._reuse(existing, payload, project_id, values.get("collaborators"))
        if existing and self.if_exists == "fail":
            raise PostHogDashboardExistsError(
                f"A dashboard named {name!r} already exists (id {existing[0]['id']}) and if_exists='fail'."
            )
        attempt = {"name": name, "project_id": project_id, "known_ids": sorted(known_ids)}
        write_state(context, _STATE_KEY, attempt, self.log)
        try:
            dashboard = self.hook.create_dashboard(**payload, project_id=project_id)
        except PostHogWriteOutcomeUnknownError:
            self.log.warning("The answer to creating dashboard %r was lost; looking it up.", name)
            created = self._find_lost_create(name, project_id, known_ids)
            if not created:
                self.log.info("Dashboard %r was not created; creating it.", name)
                dashboard = self.hook.create_dashboard(**payload, project_id=project_id)
            else:
                dashboard = created[0]
        write_state(context, _STATE_KEY, {**attempt, "id": dashboard["id"]}, self.log)
        self.log.info("Created PostHog dashboard %s named %r.", dashboard["id"], name)
        result = self._result(dashboard, project_id, created=True)
        return self._add_collaborators(result, values.get("collaborators"), project_id)

    def _reuse(
        self,
        existing: list[dict[str, Any]],
        payload: dict[str, Any],
        project_id: str | None,
        collaborators: list[str] | None,
    ) -> dict[str, Any]:
        """The oldest dashboard with the name, made to match with ``if_exists="update"``."""
        dashboard, name = existing[0], payload["name"]
        if len(existing) > 1:
            self.log.warning(
                "%d PostHog dashboards are named %r (ids %s); using the oldest, %s. Rename or delete "
                "the others in PostHog so that this task always means the same one.",
                len(existing),
                name,
                ", ".join(str(d["id"]) for d in existing),
                dashboard["id"],
            )
        wanted = {key: value for key, value in payload.items() if key not in _CREATE_ONLY}
        if any(key not in dashboard for key in wanted):  # e.g. filters: not in the list's records
            dashboard = self.hook.get_dashboard(dashboard["id"], project_id=project_id)
        differences = {
            key: (dashboard.get(key), value)
            for key, value in wanted.items()
            if not _same(key, dashboard.get(key), value)
        }
        if self.if_exists == "reuse":
            self.log.info("Reusing PostHog dashboard %s named %r.", dashboard["id"], name)
            if differences:
                self.log.warning(
                    "PostHog dashboard %s named %r differs from this task: %s. It was reused as it is; "
                    "use if_exists='update' to make it match.",
                    dashboard["id"],
                    name,
                    _describe(differences),
                )
            result = self._result(dashboard, project_id, created=False)
        elif differences:
            changes = {key: new for key, (_old, new) in differences.items()}
            updated = self.hook.update_dashboard(dashboard["id"], project_id=project_id, **changes)
            self.log.info(
                "Updated PostHog dashboard %s named %r: %s.", dashboard["id"], name, _describe(differences)
            )
            result = {**self._result(updated, project_id, created=False), "updated": sorted(differences)}
        else:
            self.log.info("PostHog dashboard %s named %r already matches this task.", dashboard["id"], name)
            result = {**self._result(dashboard, project_id, created=False), "updated": []}
        return self._add_collaborators(result, collaborators, project_id)

    def _add_collaborators(
        self, result: dict[str, Any], collaborators: list[str] | None, project_id: str | None
    ) -> dict[str, Any]:
        if collaborators is None:
            return result
        for user_uuid in collaborators:
            add_collaborator(self.hook, self.log, result["id"], user_uuid, COLLABORATORS_LEVEL, project_id)
        return {**result, "collaborators": list(collaborators)}

    def _created_by_an_earlier_try(
        self, context: Context, name: str, project_id: str | None, existing: list[dict[str, Any]]
    ) -> dict[str, Any] | None:
        """
        The dashboard an earlier try of this task instance created, if it still exists.

        Airflow >= 3.3 keeps the task's state across tries: the ids that existed before the
        create, then the created id. This makes ``if_exists="create"`` safe to retry too, even when
        the earlier try died before hearing PostHog's answer.
        """
        saved = read_state(context, _STATE_KEY, self.log)
        if not saved or (saved.get("name"), saved.get("project_id")) != (name, project_id):
            return None
        if saved.get("id") is not None:
            return next((d for d in existing if d["id"] == saved["id"]), None)
        before = set(saved.get("known_ids") or [])
        return next((d for d in existing if d["id"] not in before), None)

    def _find_lost_create(
        self, name: str, project_id: str | None, known_ids: set[int]
    ) -> list[dict[str, Any]]:
        """
        The dashboards named ``name`` created since ``known_ids`` were listed, looked up after a
        create whose answer was lost. A create can commit after the client gave up waiting, so an
        empty answer is asked again after each of :attr:`lost_create_waits` before it is believed.
        """
        for wait in (0.0, *self.lost_create_waits):
            if wait:
                self.log.info("Dashboard %r not found yet; looking again in %.0f s.", name, wait)
                time.sleep(wait)
            created = [d for d in self._find_by_name(name, project_id) if d["id"] not in known_ids]
            if created:
                return created
        return []

    def _find_by_name(self, name: str, project_id: str | None) -> list[dict[str, Any]]:
        """Non-deleted dashboards named exactly ``name``, oldest first."""
        search = name if len(name) <= _MAX_SEARCH else None
        dashboards = self.hook.list_dashboards(search=search, project_id=project_id)
        return sorted((d for d in dashboards if d.get("name") == name and not d.get("deleted")), key=_by_id)

    def _result(self, dashboard: dict[str, Any], project_id: str | None, *, created: bool) -> dict[str, Any]:
        self.dashboard_url = self.hook.ui_url(
            project_id or dashboard.get("team_id"), f"dashboard/{dashboard['id']}"
        )
        return {
            "id": dashboard["id"],
            "name": dashboard.get("name"),
            "url": self.dashboard_url,
            "created": created,
        }


def _by_id(dashboard: dict[str, Any]) -> int:
    return dashboard["id"]


def _same(key: str, current: Any, wanted: Any) -> bool:
    if key == "tags":
        return sorted(current or []) == sorted(wanted or [])
    if key == "description":
        return (current or "") == (wanted or "")
    return bool(current == wanted)


def _describe(differences: dict[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{key} {old!r} -> {new!r}" for key, (old, new) in sorted(differences.items()))


class PostHogAddDashboardCollaboratorOperator(PostHogBaseOperator):
    """
    Give a user edit access to a restricted PostHog dashboard.

    A user who already is a collaborator, or who has access anyway (the dashboard's owner, a
    project admin), counts as success, so the task is safe to retry and to re-run. Other refusals
    fail the task with PostHog's message.

    :param dashboard_id: id of the dashboard (restriction level 37). (templated)
    :param user_uuid: UUID of the user to add. (templated)
    :param level: 37 (can edit), the only level PostHog accepts for now.
    :param posthog_conn_id: Airflow connection id of type ``posthog``. (templated)
    :param project_id: PostHog project id; default: the connection's. (templated)
    :return: PostHog's collaborator record ``{"id", "dashboard_id", "user", "level", ...}``
    """

    template_fields: Sequence[str] = (
        *PostHogBaseOperator.template_fields,
        "dashboard_id",
        "user_uuid",
        "level",
    )
    field_checks = extend(
        PostHogBaseOperator.field_checks,
        dashboard_id=check_positive_int,
        user_uuid=check_uuid,
        level=one_of(COLLABORATOR_LEVELS),
    )
    operator_extra_links = (PostHogDashboardLink(),)

    def __init__(
        self, *, dashboard_id: int | str, user_uuid: str, level: int | str = 37, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.dashboard_id = dashboard_id
        self.user_uuid = user_uuid
        self.level = level
        self.dashboard_url: str | None = None
        self.check_literal_fields()

    def execute(self, context: Context) -> dict[str, Any]:
        values = self.checked_fields()
        dashboard_id, user_uuid, level = values["dashboard_id"], values["user_uuid"], values["level"]
        project_id = values["project_id"]
        self.dashboard_url = self.hook.ui_url(project_id, f"dashboard/{dashboard_id}")
        return add_collaborator(self.hook, self.log, dashboard_id, user_uuid, level, project_id)


def add_collaborator(
    hook: PostHogHook, log: Any, dashboard_id: int, user_uuid: str, level: int, project_id: str | None
) -> dict[str, Any]:
    """
    Add one collaborator; one who already has access counts as success, a lost answer is looked up.

    :return: PostHog's collaborator record (or a stand-in for a user with inherent access).
    """
    log.info("Adding user %s to PostHog dashboard %s at level %s.", user_uuid, dashboard_id, level)
    try:
        return hook.add_dashboard_collaborator(dashboard_id, user_uuid, level, project_id=project_id)
    except PostHogBadRequestError as error:
        if error.detail == ALREADY_COLLABORATOR:
            log.info("User %s already is a collaborator of dashboard %s.", user_uuid, dashboard_id)
            return _existing(hook, dashboard_id, user_uuid, project_id) or _inherent(dashboard_id, user_uuid)
        if error.detail and error.detail.startswith(INHERENT_ACCESS):
            log.info(
                "User %s has access to dashboard %s as its owner or a project admin; nothing to add.",
                user_uuid,
                dashboard_id,
            )
            return _inherent(dashboard_id, user_uuid)
        if error.detail and error.detail.startswith(LOWEST_RESTRICTION):
            _explain_lowest_restriction(hook, error, dashboard_id, project_id)
        raise
    except PostHogWriteOutcomeUnknownError:
        log.warning(
            "The answer to adding %s to dashboard %s was lost; looking it up.", user_uuid, dashboard_id
        )
        existing = _existing(hook, dashboard_id, user_uuid, project_id)
        if existing:
            return existing
        try:
            return hook.add_dashboard_collaborator(dashboard_id, user_uuid, level, project_id=project_id)
        except PostHogBadRequestError as error:
            if error.detail != ALREADY_COLLABORATOR:
                raise
            # The lost add committed after the look-up: it is this task's own collaborator.
            log.info("The lost add of %s to dashboard %s was carried out.", user_uuid, dashboard_id)
            return _existing(hook, dashboard_id, user_uuid, project_id) or _inherent(dashboard_id, user_uuid)


def _existing(
    hook: PostHogHook, dashboard_id: int, user_uuid: str, project_id: str | None
) -> dict[str, Any] | None:
    for collaborator in hook.list_dashboard_collaborators(dashboard_id, project_id=project_id):
        if (collaborator.get("user") or {}).get("uuid") == user_uuid:
            return collaborator
    return None


def _explain_lowest_restriction(
    hook: PostHogHook, error: PostHogBadRequestError, dashboard_id: int, project_id: str | None
) -> None:
    """Say which of the two causes of PostHog's "lowest restriction level" refusal applies."""
    try:
        dashboard = hook.get_dashboard(dashboard_id, project_id=project_id)
    except PostHogError:
        dashboard = {}
    about = f"Dashboard {dashboard_id}" + (f" ({dashboard['name']!r})" if dashboard.get("name") else "")
    if dashboard.get("restriction_level") == COLLABORATORS_LEVEL:
        _set_hint(
            error,
            f"{about} has restriction_level=37, but PostHog treats it as 21 (everyone can edit): the "
            "organization lacks PostHog's paid access-control feature, which collaborators need. "
            "Enable it (Organization settings > Billing), or drop the collaborator tasks.",
        )
    else:
        _set_hint(
            error,
            f"{about} has restriction_level={dashboard.get('restriction_level', 21)} (everyone in the "
            "project can edit), which takes no collaborators. Set restriction_level=37 on it: "
            "PostHogCreateDashboardOperator(..., restriction_level=37, if_exists='update') changes an "
            "existing one. The organization also needs PostHog's paid access-control feature.",
        )


def _set_hint(error: PostHogBadRequestError, hint: str) -> None:
    error.hint = hint
    error.args = (error._message(),)


def _inherent(dashboard_id: int, user_uuid: str) -> dict[str, Any]:
    """The record returned for a user whose access needs no collaborator entry."""
    return {"dashboard_id": dashboard_id, "user": {"uuid": user_uuid}, "level": 37, "inherent_access": True}
