"""Operators that provision PostHog dashboards and who may edit them (docs/waiting-and-operators.md)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_phenv.errors import (
    PostHogAuthError,
    PostHogBadRequestError,
    PostHogError,
    PostHogNotFoundError,
    PostHogWriteOutcomeUnknownError,
)
from airflow_provider_phenv.hooks.posthog import ACCESS_SCOPES, ACCESS_TASKS, lacking_scopes
from airflow_provider_phenv.links import PostHogDashboardLink
from airflow_provider_phenv.operators.batch_exports import PostHogBaseOperator
from airflow_provider_phenv.validation import (
    COLLABORATOR_LEVELS,
    CREATE_ONLY,
    DASHBOARD_FIELDS,
    check_positive_int,
    check_uuid,
    dashboard_payload,
    extend,
    is_known,
    one_of,
    optional,
)
from airflow_provider_phenv.waits import write_state

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_phenv.hooks.posthog import PostHogHook

COLLABORATORS_LEVEL = 37  # restriction level "only collaborators can edit": the legacy model
EVERYONE_CAN_EDIT = 21  # restriction level of the current model, where access controls decide
ORGANIZATION_ADMIN = 8  # OrganizationMembership.Level.ADMIN: admins (and owners, 15) manage every dashboard
_STATE_KEY = "posthog_create_dashboard"
_MAX_SEARCH = 200  # PostHog's search filter takes at most 200 characters; longer names match client-side
# PostHog's 400 details for a collaborator who needs no adding (docs/posthog-api.md §7.3).
ALREADY_COLLABORATOR = "User already is a collaborator."
INHERENT_ACCESS = "Cannot add collaborators that already have inherent access"
ACCESS_CONTROL_FEATURE = "access_control"  # without it PostHog stores access levels and ignores them
_POSTHOG_DEFAULT = "editor"  # everyone's level on a dashboard without a default rule


class PostHogDashboardAccessError(PostHogError, AirflowFailException):
    """Dashboard access asked for in a way PostHog would accept without effect, or cannot grant."""


class PostHogDashboardExistsError(PostHogError, AirflowFailException):
    """``if_exists="fail"`` and a dashboard with the name already exists. Not retried."""


def check_people(name: str, value: Any) -> list[str]:
    """A list of user emails or UUIDs, each once; emails compared without case."""
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"Invalid {name} {value!r}: expected a list of user emails or UUIDs.")
    people: list[str] = []
    for item in value:
        person = item.strip().lower() if isinstance(item, str) and "@" in item else check_uuid(name, item)
        if person not in people:
            people.append(person)
    return people


def _check_collaborators(name: str, value: Any) -> list[str]:
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"Invalid {name} {value!r}: expected a list of user UUIDs.")
    return [check_uuid(name, item) for item in value]


#: The checks of the access parameters, shared by the operators that take them.
ACCESS_CHECKS = {
    "editors": optional(check_people),
    "viewers": optional(check_people),
    "default_access": optional(one_of(("none", "viewer", "editor"))),  # ``manager`` is for people
}


class DashboardAccess:
    """Converges a dashboard's access controls to a task's access parameters, writing only what differs.

    :param values: the task's checked fields: ``editors`` and ``viewers`` together name all who have a
        level (``None``: as they are), ``default_access`` everyone else's (``None``: as it is).
    """

    def __init__(self, hook: PostHogHook, log: Any, values: dict[str, Any]) -> None:
        self.hook, self.log, self.project_id = hook, log, values["project_id"]
        self.editors: list[str] | None = values["editors"]
        self.viewers: list[str] | None = values["viewers"]
        self.default: str | None = values["default_access"]
        self.manages_members = self.editors is not None or self.viewers is not None
        self._members: dict[str, dict[str, Any]] = {}  # by membership id
        self._by_person: dict[str, dict[str, Any]] = {}  # by user UUID and by email

    def check(self) -> None:
        """Refuse a key without the scopes, an organization without the feature, and non-members."""
        # key_scopes() is None on an older PostHog that cannot show a key its scopes: nothing to refuse.
        if missing := lacking_scopes(self.hook.key_scopes(), ACCESS_SCOPES):
            raise PostHogDashboardAccessError(
                f"The personal API key lacks the scope{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
                f", needed by {ACCESS_TASKS}. Add {'them' if len(missing) > 1 else 'it'} to the key in "
                "PostHog (Settings > Personal API keys)."
            )
        organization_id = require_access_control(
            self.hook, self.project_id, "editors, viewers and default_access"
        )
        if not self.manages_members:
            return
        for member in self.hook.list_organization_members(organization_id=organization_id):
            self._members[member["id"]] = member
            user = member.get("user") or {}
            keys = (user.get("uuid"), (user.get("email") or "").lower())
            self._by_person |= {key: member for key in keys if key}
        unknown = [p for p in (*(self.editors or ()), *(self.viewers or ())) if p not in self._by_person]
        if unknown:
            raise PostHogDashboardAccessError(
                f"{', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not a member of the project's "
                "organization in PostHog: invite them first, or correct the email or user UUID."
            )

    def check_dashboard(self, dashboard: dict[str, Any], restriction_level: Any = None) -> None:
        """Refuse a dashboard on the legacy model, where collaborators decide who edits."""
        level = restriction_level if restriction_level is not None else dashboard.get("restriction_level")
        if level is not None and int(level) > EVERYONE_CAN_EDIT:
            raise PostHogDashboardAccessError(
                f"{_about(dashboard)} is on PostHog's legacy access model (restriction_level={level}): only "
                "collaborators edit it. Move it first with PostHogCreateDashboardOperator(..., "
                "restriction_level=21, if_exists='update'), or keep collaborators=[...] on it."
            )

    def converge(self, dashboard_id: int) -> dict[str, Any]:
        """Write the rules that differ: ``{"changed": [{"member" or "default", "old", "new"}], "access"}``."""
        current = self.hook.list_dashboard_access_controls(dashboard_id, project_id=self.project_id)
        if current.get("user_can_edit_access_levels") is False:
            raise PostHogDashboardAccessError(
                f"The personal API key's user may not change who can access dashboard {dashboard_id}: "
                "only its creator and the project's or organization's admins may. Use a key of one of them."
            )
        old, explicit = access_rules(current)
        changes: list[dict[str, Any]] = []
        default = old or current.get("default_access_level") or _POSTHOG_DEFAULT
        if self.default is not None and default != self.default:
            self._write(dashboard_id, None, self.default)
            changes.append({"default": True, "old": old, "new": self.default})
            default = self.default
        if self.manages_members:
            wanted = {self._by_person[person]["id"]: "editor" for person in self.editors or ()}
            wanted |= {self._by_person[person]["id"]: "viewer" for person in self.viewers or ()}
            for member_id in sorted({*explicit, *wanted}):
                old, new = explicit.get(member_id), wanted.get(member_id)
                if old != new:
                    self._write(dashboard_id, member_id, new)
                    changes.append({"member": self._name(member_id), "old": old, "new": new})
        if not changes:
            self.log.info("Access to PostHog dashboard %s already matches this task.", dashboard_id)
        editors = [self._name(self._by_person[p]["id"]) for p in self.editors or ()]  # emails
        viewers = [self._name(self._by_person[p]["id"]) for p in self.viewers or ()]
        return {"changed": changes, "access": {"default": default, "editors": editors, "viewers": viewers}}

    def _write(self, dashboard_id: int, member_id: str | None, level: str | None) -> None:
        who = "default" if member_id is None else self._name(member_id)
        self.log.info("PostHog dashboard %s: %s -> %s.", dashboard_id, who, level or "default")
        self.hook.set_dashboard_access_control(
            dashboard_id, access_level=level, organization_member=member_id, project_id=self.project_id
        )

    def _name(self, member_id: str) -> str:
        user = (self._members.get(member_id) or {}).get("user") or {}
        return user.get("email") or user.get("uuid") or member_id


def access_rules(current: dict[str, Any]) -> tuple[str | None, dict[str, str]]:
    """The default level (``None``: no rule) and the members' levels by membership id; roles left alone."""
    rows = [row for row in current["access_controls"] if isinstance(row, dict) and not row.get("role")]
    default = next((row["access_level"] for row in rows if not row.get("organization_member")), None)
    members = {r["organization_member"]: r["access_level"] for r in rows if r.get("organization_member")}
    return default, members


def require_access_control(hook: PostHogHook, project_id: str | None, what: str) -> str:
    """Refuse, before any write, an organization without the access-control feature; return its id."""
    try:
        organization = hook.get_organization(project_id=project_id)
    except PostHogAuthError as error:
        raise PostHogDashboardAccessError(
            f"Could not read the project's organization to check that it has PostHog's access-control "
            f"feature, which {what} need: {error}. Give the key the scope organization:read."
        ) from error
    features = [
        feature.get("key") if isinstance(feature, dict) else feature
        for feature in organization.get("available_product_features") or []
    ]
    if ACCESS_CONTROL_FEATURE not in features:
        name = organization.get("name") or organization.get("id")
        raise PostHogDashboardAccessError(
            f"Organization {name!r} lacks PostHog's access-control feature ({ACCESS_CONTROL_FEATURE!r} is "
            f"not among its available_product_features): PostHog would accept {what} and ignore them. "
            "Enable it (a paid add-on, Organization settings > Billing), or drop them."
        )
    return str(organization.get("id"))


def _about(dashboard: dict[str, Any]) -> str:
    name = dashboard.get("name")
    return f"Dashboard {dashboard.get('id')}" + (f" ({name!r})" if name else "")


class _DashboardOperator(PostHogBaseOperator):
    """An operator about one dashboard, with a link to it."""

    operator_extra_links = (PostHogDashboardLink(),)
    dashboard_url: str | None = None

    def _link_dashboard(self, project_id: Any, dashboard_id: Any) -> str | None:
        self.dashboard_url = self.hook.ui_url(project_id, f"dashboard/{dashboard_id}")
        return self.dashboard_url


class _DashboardAccessOperator(_DashboardOperator):
    """A dashboard operator that takes ``editors``, ``viewers`` and ``default_access``.

    :param editors: user emails or UUIDs who may edit; with ``viewers``, all who have a level. (templated)
    :param viewers: user emails or UUIDs who may only view. (templated)
    :param default_access: everyone else's level: ``"none"``, ``"viewer"`` or ``"editor"``. (templated)
    """

    def __init__(
        self,
        *,
        editors: list[str] | None = None,
        viewers: list[str] | None = None,
        default_access: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.editors, self.viewers, self.default_access = editors, viewers, default_access
        self.access_given = editors is not None or viewers is not None or default_access is not None

    def check_combination(self, values: dict[str, Any]) -> None:
        both = sorted(set(values.get("editors") or ()) & set(values.get("viewers") or ()))
        if both:
            raise ValueError(f"{', '.join(both)} cannot be both in editors and in viewers: pick one.")


class PostHogCreateDashboardOperator(_DashboardAccessOperator):
    """Create a PostHog dashboard, or reuse (``if_exists``) the one that already has this name.

    :param name: the dashboard's name. (templated)
    :param description: its description. (templated)
    :param pinned: pin it in the dashboards list.
    :param tags: tags (a paid PostHog feature). (templated)
    :param restriction_level: 21 (everyone in the project can edit) or 37 (only collaborators).
    :param use_template: create from this PostHog template key. (templated)
    :param use_dashboard: duplicate this dashboard id. (templated)
    :param if_exists: ``"reuse"``, ``"update"`` (reuse, fields made to match), ``"fail"`` or ``"create"``.
    :param fields: other dashboard fields PostHog accepts (``filters``...). (templated)
    :param collaborators: user UUIDs given edit access the legacy way (``restriction_level=37``). (templated)
    :param kwargs: as for :class:`_DashboardAccessOperator` (``editors``, ``viewers``...) and its bases.
    :return: ``{"id", "name", "url", "created"}``, plus ``"updated"`` with ``if_exists="update"``,
        ``"collaborators"`` when given, and ``"access": {"default", "editors", "viewers"}`` when asked for.
    """

    template_fields: Sequence[str] = (
        *PostHogBaseOperator.template_fields,
        *DASHBOARD_FIELDS,
        "fields",
        "collaborators",
        *ACCESS_CHECKS,
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"fields": "json"}
    field_checks = extend(
        PostHogBaseOperator.field_checks,
        if_exists=one_of(("reuse", "update", "fail", "create")),
        collaborators=optional(_check_collaborators),
        **ACCESS_CHECKS,
    )
    #: Seconds to wait before each further look-up of a create whose answer was lost.
    lost_create_waits: ClassVar[tuple[float, ...]] = (3.0, 7.0)

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
        legacy = str(restriction_level) == str(COLLABORATORS_LEVEL)
        if (self.access_given and legacy) or (collaborators is not None and not legacy):
            raise ValueError(
                "collaborators need restriction_level=37 (PostHog's legacy model) and editors, viewers and "
                "default_access need restriction_level=21 (its current model): they cannot be used together; "
                f"got restriction_level={restriction_level!r}."
            )
        self.name, self.description, self.pinned = name, description, pinned
        self.tags, self.restriction_level = tags, restriction_level
        self.use_template, self.use_dashboard = use_template, use_dashboard
        self.if_exists, self.fields, self.collaborators = if_exists, fields or {}, collaborators
        self._access: DashboardAccess | None = None
        self.check_literal_fields()

    def check_combination(self, values: dict[str, Any]) -> None:
        super().check_combination(values)
        # The dashboard's fields are checked as one payload, once every one of them is known.
        if all(is_known(getattr(self, name)) for name in ("fields", *DASHBOARD_FIELDS)):
            values["payload"] = dashboard_payload(
                **{name: getattr(self, name) for name in DASHBOARD_FIELDS}, **self.fields
            )

    def execute(self, context: Context) -> dict[str, Any]:
        values = self.checked_fields()
        payload, project_id, name = values["payload"], values["project_id"], values["payload"]["name"]
        if any(values[key] is not None for key in ACCESS_CHECKS):
            self._access = DashboardAccess(self.hook, self.log, values)
            self._access.check()
        elif payload.get("restriction_level") == COLLABORATORS_LEVEL:
            require_access_control(self.hook, project_id, "restriction_level=37 and collaborators")
        # Looked up in every mode: "create" needs the ids that existed before, to recognise its
        # own dashboard if PostHog's answer to the create is lost.
        existing = self._find_by_name(name, project_id)
        earlier_try = self._created_by_an_earlier_try(context, name, project_id, existing)
        if earlier_try is not None:
            self.log.info("An earlier try created PostHog dashboard %s named %r.", earlier_try["id"], name)
            result = self._result(earlier_try, project_id, created=True)
        elif existing and self.if_exists in ("reuse", "update"):
            result = self._reuse(existing, payload, project_id)
        elif existing and self.if_exists == "fail":
            raise PostHogDashboardExistsError(
                f"A dashboard named {name!r} already exists (id {existing[0]['id']}) and if_exists='fail'."
            )
        else:
            known_ids = {dashboard["id"] for dashboard in existing}
            attempt = {"name": name, "project_id": project_id, "known_ids": sorted(known_ids)}
            write_state(context, _STATE_KEY, attempt, self.log)
            try:
                dashboard = self.hook.create_dashboard(**payload, project_id=project_id)
            except PostHogWriteOutcomeUnknownError:
                self.log.warning("The answer to creating dashboard %r was lost; looking it up.", name)
                found = self._find_lost_create(name, project_id, known_ids)
                dashboard = found or self.hook.create_dashboard(**payload, project_id=project_id)
            write_state(context, _STATE_KEY, {**attempt, "id": dashboard["id"]}, self.log)
            self.log.info("Created PostHog dashboard %s named %r.", dashboard["id"], name)
            result = self._result(dashboard, project_id, created=True)
        return self._grant(result, values["collaborators"], project_id)

    def _reuse(
        self, existing: list[dict[str, Any]], payload: dict[str, Any], project_id: str | None
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
        wanted = {key: value for key, value in payload.items() if key not in ("name", *CREATE_ONLY)}
        if any(key not in dashboard for key in wanted):  # e.g. filters: not in the list's records
            dashboard = self.hook.get_dashboard(dashboard["id"], project_id=project_id)
        if self._access is not None:  # before any write: the level the dashboard will have
            updating = self.if_exists == "update" and "restriction_level" in wanted
            self._access.check_dashboard(dashboard, wanted["restriction_level"] if updating else None)
        differing = sorted(key for key, value in wanted.items() if not _same(key, dashboard.get(key), value))
        changes = ", ".join(f"{key} {dashboard.get(key)!r} -> {wanted[key]!r}" for key in differing)
        about = f"PostHog dashboard {dashboard['id']} named {name!r}"
        if not differing:
            self.log.info("Reusing %s, which already matches this task.", about)
        elif self.if_exists == "reuse":
            self.log.warning(
                "Reusing %s as it is, though it differs from this task: %s. Use if_exists='update' to make "
                "it match.",
                about,
                changes,
            )
        else:
            update = {key: wanted[key] for key in differing}
            dashboard = self.hook.update_dashboard(dashboard["id"], project_id=project_id, **update)
            self.log.info("Updated %s: %s.", about, changes)
        result = self._result(dashboard, project_id, created=False)
        if self.if_exists == "update":
            result["updated"] = differing
        return result

    def _grant(
        self, result: dict[str, Any], collaborators: list[str] | None, project_id: str | None
    ) -> dict[str, Any]:
        """Give the access this task asks for: access controls, or the legacy collaborators."""
        if self._access is not None:
            return {**result, "access": self._access.converge(result["id"])["access"]}
        if collaborators is None:
            return result
        check_collaborator_grants(self.hook, result["id"], collaborators, project_id)
        for user_uuid in collaborators:
            add_collaborator(self.hook, self.log, result["id"], user_uuid, COLLABORATORS_LEVEL, project_id)
        return {**result, "collaborators": list(collaborators)}

    def _created_by_an_earlier_try(
        self, context: Context, name: str, project_id: str | None, existing: list[dict[str, Any]]
    ) -> dict[str, Any] | None:
        """The dashboard an earlier try of this task instance created, if it still exists."""
        saved = self._earlier_try(context, _STATE_KEY, name=name, project_id=project_id)
        if saved is None:
            return None
        if saved.get("id") is not None:
            return next((d for d in existing if d["id"] == saved["id"]), None)
        before = set(saved.get("known_ids") or [])
        return next((d for d in existing if d["id"] not in before), None)

    def _find_lost_create(
        self, name: str, project_id: str | None, known_ids: set[int]
    ) -> dict[str, Any] | None:
        """The dashboard named ``name`` not in ``known_ids``, asked again after each lost-create wait."""
        for wait in (0.0, *self.lost_create_waits):
            if wait:
                self.log.info("Dashboard %r not found yet; looking again in %.0f s.", name, wait)
                time.sleep(wait)
            created = [d for d in self._find_by_name(name, project_id) if d["id"] not in known_ids]
            if created:
                return created[0]
        self.log.info("Dashboard %r was not created; creating it.", name)
        return None

    def _find_by_name(self, name: str, project_id: str | None) -> list[dict[str, Any]]:
        """Non-deleted dashboards named exactly ``name``, oldest first."""
        search = name if len(name) <= _MAX_SEARCH else None
        dashboards = self.hook.list_dashboards(search=search, project_id=project_id)
        found = (d for d in dashboards if d.get("name") == name and not d.get("deleted"))
        return sorted(found, key=lambda dashboard: dashboard["id"])

    def _result(self, dashboard: dict[str, Any], project_id: str | None, *, created: bool) -> dict[str, Any]:
        url = self._link_dashboard(project_id or dashboard.get("team_id"), dashboard["id"])
        return {"id": dashboard["id"], "name": dashboard.get("name"), "url": url, "created": created}


def _same(key: str, current: Any, wanted: Any) -> bool:
    if key == "tags":
        return sorted(current or []) == sorted(wanted or [])
    if key == "description":
        return (current or "") == (wanted or "")
    return bool(current == wanted)


class PostHogAddDashboardCollaboratorOperator(_DashboardOperator):
    """Give a user edit access to a restricted PostHog dashboard; one who already has it counts as success.

    :param dashboard_id: id of the dashboard (restriction level 37). (templated)
    :param user_uuid: UUID of the user to add. (templated)
    :param level: 37 (can edit), the only level PostHog accepts for now.
    :param kwargs: as for :class:`PostHogBaseOperator` (``posthog_conn_id``, ``project_id``...).
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

    def __init__(
        self, *, dashboard_id: int | str, user_uuid: str, level: int | str = 37, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.dashboard_id, self.user_uuid, self.level = dashboard_id, user_uuid, level
        self.check_literal_fields()

    def execute(self, context: Context) -> dict[str, Any]:
        values = self.checked_fields()
        dashboard_id, project_id = values["dashboard_id"], values["project_id"]
        user_uuid = values["user_uuid"]
        self._link_dashboard(project_id, dashboard_id)
        check_collaborator_grants(self.hook, dashboard_id, [user_uuid], project_id)
        return add_collaborator(self.hook, self.log, dashboard_id, user_uuid, values["level"], project_id)


def add_collaborator(
    hook: PostHogHook, log: Any, dashboard_id: int, user_uuid: str, level: int, project_id: str | None
) -> dict[str, Any]:
    """Add one collaborator; one who already has access counts as success, a lost answer is looked up."""
    # The record of a user whose access needs no collaborator entry (the owner, an admin).
    inherent = dict(dashboard_id=dashboard_id, user={"uuid": user_uuid}, level=37, inherent_access=True)

    def existing() -> dict[str, Any] | None:
        collaborators = hook.list_dashboard_collaborators(dashboard_id, project_id=project_id)
        return next((c for c in collaborators if (c.get("user") or {}).get("uuid") == user_uuid), None)

    def add() -> dict[str, Any]:
        try:
            return hook.add_dashboard_collaborator(dashboard_id, user_uuid, level, project_id=project_id)
        except PostHogBadRequestError as error:
            if (error.detail or "").startswith(INHERENT_ACCESS):
                log.info("User %s is the owner or a project admin of dashboard %s.", user_uuid, dashboard_id)
                return inherent
            if error.detail != ALREADY_COLLABORATOR:
                raise
            log.info("User %s already is a collaborator of dashboard %s.", user_uuid, dashboard_id)
            return existing() or inherent

    log.info("Adding user %s to PostHog dashboard %s at level %s.", user_uuid, dashboard_id, level)
    try:
        return add()
    except PostHogWriteOutcomeUnknownError:
        log.warning("Lost the answer to adding %s to dashboard %s; looking it up.", user_uuid, dashboard_id)
    # A lost add that committed after the look-up answers "already a collaborator": this task's own.
    return existing() or add()


def check_collaborator_grants(
    hook: PostHogHook, dashboard_id: int, user_uuids: Sequence[str], project_id: str | None
) -> None:
    """Refuse, before any write, collaborators PostHog would refuse or its access controls overrule."""
    dashboard = hook.get_dashboard(dashboard_id, project_id=project_id)
    stored = dashboard.get("restriction_level", EVERYONE_CAN_EDIT)
    if stored <= EVERYONE_CAN_EDIT:
        raise PostHogDashboardAccessError(
            f"{_about(dashboard)} has restriction_level={stored}: on PostHog's current access model "
            "collaborators play no part and PostHog refuses them. Give edit access with "
            f"PostHogSetDashboardAccessOperator(dashboard_id={dashboard_id}, editors=[...]) instead."
        )
    if dashboard.get("effective_restriction_level", stored) <= EVERYONE_CAN_EDIT:
        raise PostHogDashboardAccessError(
            f"{_about(dashboard)} has restriction_level={stored}, but PostHog treats it as 21 (everyone "
            "can edit): the organization lacks PostHog's paid access-control feature, which "
            "collaborators need. Enable it (Organization settings > Billing), or drop the collaborators."
        )
    try:
        rules = hook.list_dashboard_access_controls(dashboard["id"], project_id=project_id)
        default, explicit = access_rules(rules)
        members = hook.list_organization_members(project_id=project_id) if default or explicit else []
    except (PostHogAuthError, PostHogNotFoundError):
        return  # rules or members unreadable (scopes, builds without access controls): nobody judged
    by_user = {str((m.get("user") or {}).get("uuid")): m for m in members}
    creator = (dashboard.get("created_by") or {}).get("uuid")
    overruled = []
    for user_uuid in user_uuids:
        member = by_user.get(user_uuid)
        if member is None or user_uuid == creator or (member.get("level") or 0) >= ORGANIZATION_ADMIN:
            continue  # PostHog refuses outsiders itself; the creator and admins manage it anyway
        level = explicit.get(member["id"], default)
        if level is not None and level not in ("editor", "manager"):
            overruled.append(f"{user_uuid} ({level})")
    if overruled:
        raise PostHogDashboardAccessError(
            f"{_about(dashboard)}: its access controls keep {', '.join(overruled)} below editor, and PostHog "
            "checks them before collaborators. Move the dashboard to restriction_level=21 and raise their "
            f"level with PostHogSetDashboardAccessOperator(dashboard_id={dashboard_id}, ...) instead."
        )


class PostHogSetDashboardAccessOperator(_DashboardAccessOperator):
    """Make who may edit and view a PostHog dashboard (restriction level 21) match the task.

    :param dashboard_id: id of the dashboard. (templated)
    :param kwargs: as for :class:`_DashboardAccessOperator` (``editors``, ``viewers``...) and its bases.
    :return: ``{"dashboard_id", "changed": [{"member" or "default", "old", "new"}], "access"}``.
    """

    template_fields: Sequence[str] = (*PostHogBaseOperator.template_fields, "dashboard_id", *ACCESS_CHECKS)
    field_checks = extend(PostHogBaseOperator.field_checks, dashboard_id=check_positive_int, **ACCESS_CHECKS)

    def __init__(self, *, dashboard_id: int | str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not self.access_given:
            raise ValueError("Give editors, viewers or default_access: the task has nothing to set.")
        self.dashboard_id = dashboard_id
        self.check_literal_fields()

    def execute(self, context: Context) -> dict[str, Any]:
        values = self.checked_fields()
        dashboard_id, project_id = values["dashboard_id"], values["project_id"]
        self._link_dashboard(project_id, dashboard_id)
        access = DashboardAccess(self.hook, self.log, values)
        access.check_dashboard(self.hook.get_dashboard(dashboard_id, project_id=project_id))
        access.check()
        return {"dashboard_id": dashboard_id, **access.converge(dashboard_id)}
