"""Dashboard and collaborator operators: reuse, no duplicates on retries, PostHog's refusals."""

from __future__ import annotations

import pytest
from phenv_emulator import SEED

from airflow_provider_phenv.errors import PostHogBadRequestError, PostHogWriteOutcomeUnknownError
from airflow_provider_phenv.hooks.posthog import PostHogHook
from airflow_provider_phenv.operators.dashboards import (
    PostHogAddDashboardCollaboratorOperator,
    PostHogCreateDashboardOperator,
    PostHogDashboardAccessError,
    PostHogDashboardExistsError,
)
from tests.helpers.builds import COLLABORATOR_BUILDS
from tests.helpers.emulator import FAST, api_requests, connection_json


def _named(emulator, name):
    return [d for d in emulator.state.dashboards.values() if d["name"] == name and not d.get("deleted")]


def test_create_then_reuse(emulator, posthog_conn):
    op = PostHogCreateDashboardOperator(task_id="create", name="Pipeline health", pinned=True)
    first = op.execute({})
    assert first["created"] is True and first["name"] == "Pipeline health"
    assert first["url"] == f"{emulator.url}/project/1/dashboard/{first['id']}"
    assert op.dashboard_url == first["url"]
    assert len(api_requests(emulator)) == 2  # look up, create
    emulator.clear_requests()
    again = op.execute({})
    assert again == {**first, "created": False}
    assert len(api_requests(emulator)) == 1
    assert len(_named(emulator, "Pipeline health")) == 1


def test_if_exists_fail(emulator, posthog_conn):
    emulator.state.add_dashboard("Taken")
    op = PostHogCreateDashboardOperator(task_id="create", name="Taken", if_exists="fail")
    with pytest.raises(PostHogDashboardExistsError, match="'Taken' already exists"):
        op.execute({})


def test_if_exists_create_makes_another(emulator, posthog_conn):
    emulator.state.add_dashboard("Twice")
    result = PostHogCreateDashboardOperator(task_id="create", name="Twice", if_exists="create").execute({})
    assert result["created"] is True
    assert len(_named(emulator, "Twice")) == 2


def test_a_deleted_dashboard_is_not_reused(emulator, posthog_conn):
    emulator.state.add_dashboard("Gone", deleted=True)
    assert PostHogCreateDashboardOperator(task_id="create", name="Gone").execute({})["created"] is True


def test_similar_names_are_not_reused(emulator, posthog_conn):
    emulator.state.add_dashboard("Pipeline health (old)")
    assert PostHogCreateDashboardOperator(task_id="c", name="Pipeline health").execute({})["created"] is True


@pytest.mark.parametrize("if_exists", ["reuse", "create"])
def test_lost_create_response_leaves_exactly_one_dashboard(emulator, posthog_conn, if_exists):
    emulator.faults.add("lost_response", method="POST", path="/dashboards", times=1)
    op = PostHogCreateDashboardOperator(task_id="create", name="Exactly once", if_exists=if_exists, **FAST)
    result = op.execute({})
    assert result["created"] is True
    assert [d["id"] for d in _named(emulator, "Exactly once")] == [result["id"]]
    assert sum(r.method == "POST" for r in api_requests(emulator)) == 1


def test_next_airflow_try_after_a_lost_response_reuses(emulator, posthog_conn):
    # The first try's create reached PostHog but its answer was lost and the worker went away
    # (the hook's own request stands in for it); the next try must find it, not create another.
    emulator.faults.add("lost_response", method="POST", path="/dashboards", times=1)
    with pytest.raises(PostHogWriteOutcomeUnknownError):
        PostHogHook().create_dashboard(name="Retried")
    result = PostHogCreateDashboardOperator(task_id="create", name="Retried").execute({})
    assert result["created"] is False
    assert [d["id"] for d in _named(emulator, "Retried")] == [result["id"]]


class _StateStore(dict):
    """Stands in for Airflow 3.3's ``context["task_state_store"]``: one per task instance."""

    def set(self, key, value):
        self[key] = value


@pytest.mark.parametrize("if_exists", ["create", "reuse"])
def test_retry_of_a_try_that_died_after_posting_creates_nothing(emulator, posthog_conn, mocker, if_exists):
    emulator.state.add_dashboard("Weekly")  # an unrelated one with the same name
    store = _StateStore()
    context = {"task_state_store": store}
    emulator.faults.add("lost_response", method="POST", path="/dashboards", times=1)
    first_try = PostHogCreateDashboardOperator(task_id="create", name="Weekly", if_exists="create")
    looked_up = first_try._find_by_name
    # The worker dies right after PostHog's answer to the create is lost: its second look-up
    # never happens.
    mocker.patch.object(first_try, "_find_by_name", side_effect=[looked_up("Weekly", None), SystemExit(1)])
    with pytest.raises(SystemExit):
        first_try.execute(context)
    assert len(_named(emulator, "Weekly")) == 2

    retry = PostHogCreateDashboardOperator(task_id="create", name="Weekly", if_exists=if_exists)
    result = retry.execute(context)
    assert len(_named(emulator, "Weekly")) == 2  # the unrelated one and exactly one of ours
    assert result["created"] is True
    assert result["id"] == max(d["id"] for d in _named(emulator, "Weekly"))
    assert store["posthog_create_dashboard"]["known_ids"] == [
        min(d["id"] for d in _named(emulator, "Weekly"))
    ]


def test_templated_fields_render(emulator, posthog_conn):
    op = PostHogCreateDashboardOperator(
        task_id="create",
        name="{{ params.name }}",
        description="for {{ ds }}",
        fields={"filters": {"a": "{{ ds }}"}},
    )
    op.render_template_fields({"params": {"name": "Rendered"}, "ds": "2026-11-26"})
    result = op.execute({})
    stored = emulator.state.dashboards[result["id"]]
    assert (stored["name"], stored["description"], stored["filters"]) == (
        "Rendered",
        "for 2026-11-26",
        {"a": "2026-11-26"},
    )


def test_add_collaborator(emulator, posthog_conn):
    op = PostHogAddDashboardCollaboratorOperator(
        task_id="add", dashboard_id=SEED.restricted_dashboard_id, user_uuid=SEED.bob_uuid
    )
    record = op.execute({})
    assert record["user"]["uuid"] == SEED.bob_uuid and record["level"] == 37
    # The dashboard and its access controls are read first, so a grant PostHog would refuse or
    # overrule is never sent.
    assert [(r.method, r.path.rsplit("/", 2)[-2]) for r in api_requests(emulator)] == [
        ("GET", str(SEED.restricted_dashboard_id)),
        ("GET", "access_controls"),
        ("POST", "collaborators"),
    ]


def test_already_a_collaborator_is_success(posthog_conn):
    # alice is seeded as an editor of the restricted dashboard.
    op = PostHogAddDashboardCollaboratorOperator(
        task_id="add", dashboard_id=str(SEED.restricted_dashboard_id), user_uuid=SEED.alice_uuid
    )
    record = op.execute({})
    assert (
        record["user"]["uuid"] == SEED.alice_uuid and record["dashboard_id"] == SEED.restricted_dashboard_id
    )


def test_owner_has_inherent_access(posthog_conn, capfd):
    op = PostHogAddDashboardCollaboratorOperator(
        task_id="add", dashboard_id=SEED.restricted_dashboard_id, user_uuid=SEED.owner_uuid
    )
    assert op.execute({})["inherent_access"] is True
    assert "owner or a project admin" in capfd.readouterr().out


@pytest.mark.parametrize(
    ("dashboard_id", "user_uuid", "detail"),
    [
        (
            SEED.restricted_dashboard_id,
            SEED.carol_uuid,
            "Cannot add collaborators that have no access to the project.",
        ),
        (SEED.restricted_dashboard_id, "01900000-0000-7000-8000-0000000000ff", "User does not exist."),
    ],
)
def test_other_refusals_fail_with_posthogs_message(posthog_conn, dashboard_id, user_uuid, detail):
    op = PostHogAddDashboardCollaboratorOperator(
        task_id="add", dashboard_id=dashboard_id, user_uuid=user_uuid
    )
    with pytest.raises(PostHogBadRequestError, match=detail):
        op.execute({})


def test_lost_collaborator_response_is_looked_up(emulator, posthog_conn):
    emulator.faults.add("lost_response", method="POST", path="/collaborators", times=1)
    op = PostHogAddDashboardCollaboratorOperator(
        task_id="add", dashboard_id=SEED.restricted_dashboard_id, user_uuid=SEED.bob_uuid, **FAST
    )
    assert op.execute({})["user"]["uuid"] == SEED.bob_uuid
    assert [r.method for r in api_requests(emulator)] == ["GET", "GET", "POST", "GET"]


def test_a_lost_answer_for_the_owner_is_inherent_access_as_without_the_loss(emulator, posthog_conn):
    # PostHog answered 400 "inherent access", but the answer was lost: sent again, the same 400.
    emulator.faults.add("lost_response", method="POST", path="/collaborators", times=1)
    op = PostHogAddDashboardCollaboratorOperator(
        task_id="add", dashboard_id=SEED.restricted_dashboard_id, user_uuid=SEED.owner_uuid, **FAST
    )
    assert op.execute({})["inherent_access"] is True
    assert [r.method for r in api_requests(emulator)] == ["GET", "GET", "POST", "GET", "POST"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "Invalid dashboard name ''"),
        ({"name": "x", "restriction_level": 99}, "Invalid restriction_level 99"),
        ({"name": "x", "if_exists": "replace"}, "Invalid if_exists 'replace'"),
        ({"name": "x", "tags": "ops"}, "Invalid tags 'ops'"),
        ({"name": "x", "use_dashboard": -3}, "Invalid use_dashboard -3"),
        ({"name": "x", "pinned": "maybe"}, "Invalid pinned 'maybe'"),
        ({"name": "x", "fields": {"filters": "x"}}, "Invalid filters 'x'"),
    ],
)
def test_create_dashboard_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PostHogCreateDashboardOperator(task_id="t", **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dashboard_id": "abc", "user_uuid": SEED.bob_uuid}, "Invalid dashboard_id 'abc'"),
        ({"dashboard_id": 3, "user_uuid": "bob@example.com"}, "Invalid user_uuid 'bob@example.com'"),
        ({"dashboard_id": 3, "user_uuid": SEED.bob_uuid, "level": 50}, "Invalid level 50"),
    ],
)
def test_add_collaborator_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PostHogAddDashboardCollaboratorOperator(task_id="t", **kwargs)


def test_templated_collaborator_input_checked_before_any_request(emulator, posthog_conn):
    op = PostHogAddDashboardCollaboratorOperator(
        task_id="t", dashboard_id="{{ params.d }}", user_uuid=SEED.bob_uuid
    )
    op.render_template_fields({"params": {"d": "0"}})
    with pytest.raises(ValueError, match="Invalid dashboard_id '0'"):
        op.execute({})
    assert api_requests(emulator) == []


# -- older PostHog builds (tests/helpers/builds.py) ----------------------------------------------


@pytest.mark.parametrize("build", COLLABORATOR_BUILDS, indirect=True)
def test_create_and_add_collaborator_on_each_build(build, emulator, posthog_conn):
    created = PostHogCreateDashboardOperator(task_id="c", name="Per build", restriction_level=37, **FAST)
    dashboard_id = created.execute({})["id"]
    op = PostHogAddDashboardCollaboratorOperator(
        task_id="a", dashboard_id=dashboard_id, user_uuid=SEED.bob_uuid, **FAST
    )
    assert op.execute({})["level"] == 37


@pytest.mark.parametrize("build", ["projects-only-collaborators"], indirect=True)
def test_collaborators_through_the_projects_prefix(build, emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_POSTHOG_DEFAULT", connection_json(emulator, api_prefix="projects"))
    op = PostHogAddDashboardCollaboratorOperator(
        task_id="a", dashboard_id=SEED.restricted_dashboard_id, user_uuid=SEED.bob_uuid, **FAST
    )
    assert op.execute({})["level"] == 37


@pytest.mark.parametrize("build", ["no-access-control"], indirect=True)
def test_collaborators_need_access_control(build, emulator, posthog_conn):
    # Without the paid feature every dashboard is effectively level 21 (§7.3): PostHog's refusal.
    op = PostHogAddDashboardCollaboratorOperator(
        task_id="a", dashboard_id=SEED.restricted_dashboard_id, user_uuid=SEED.bob_uuid, **FAST
    )
    with pytest.raises(PostHogDashboardAccessError, match="lacks PostHog's paid access-control feature"):
        op.execute({})
    assert not [r for r in api_requests(emulator) if r.method != "GET"]
