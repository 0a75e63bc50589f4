"""
Dashboards as code converge: ``if_exists="update"``, warnings when ``"reuse"`` takes something
that differs, collaborators that work on a DAG's first run, and refusals that say what to do.
"""

from __future__ import annotations

import pytest
from phenv_emulator import SEED

from airflow_provider_phenv.hooks.posthog import PostHogHook
from airflow_provider_phenv.operators.dashboards import (
    PostHogAddDashboardCollaboratorOperator,
    PostHogCreateDashboardOperator,
    PostHogDashboardAccessError,
)
from tests.helpers.emulator import api_requests


def _calls(emulator):
    return [(r.method, r.path.split("/api/projects/1/")[-1], r.body) for r in api_requests(emulator)]


def test_update_makes_an_existing_dashboard_match_patching_only_what_differs(emulator, posthog_conn, capfd):
    old = emulator.state.add_dashboard("Warehouse health", restriction_level=21)
    op = PostHogCreateDashboardOperator(
        task_id="create", name="Warehouse health", restriction_level=37, pinned=False, if_exists="update"
    )
    result = op.execute({})
    assert result["id"] == old["id"] and result["created"] is False
    assert result["updated"] == ["restriction_level"]
    patches = [call for call in _calls(emulator) if call[0] == "PATCH"]
    assert patches == [("PATCH", f"dashboards/{old['id']}/", {"restriction_level": 37})]
    assert emulator.state.dashboards[old["id"]]["restriction_level"] == 37
    assert "restriction_level 21 -> 37" in capfd.readouterr().out

    emulator.clear_requests()
    again = op.execute({})
    assert again["updated"] == []
    # Nothing left to change: the organization's access-control feature (which level 37 needs) is
    # checked, and the dashboard looked up.
    assert [(method, path) for method, path, _ in _calls(emulator)] == [
        ("GET", ""),  # the project, for its organization
        ("GET", f"/api/organizations/{SEED.organization_id}/"),
        ("GET", "dashboards/"),
    ]


def test_update_reads_fields_the_list_does_not_show(emulator, posthog_conn):
    old = emulator.state.add_dashboard("Filtered")
    op = PostHogCreateDashboardOperator(
        task_id="create", name="Filtered", fields={"filters": {"date_from": "-7d"}}, if_exists="update"
    )
    assert op.execute({})["updated"] == ["filters"]
    assert emulator.state.dashboards[old["id"]]["filters"] == {"date_from": "-7d"}


def test_reuse_warns_when_the_dashboard_differs(emulator, posthog_conn, capfd):
    old = emulator.state.add_dashboard("Warehouse health", restriction_level=21)
    op = PostHogCreateDashboardOperator(task_id="create", name="Warehouse health", restriction_level=37)
    assert op.execute({})["id"] == old["id"]
    out = capfd.readouterr().out
    assert "differs from this task: restriction_level 21 -> 37" in out
    assert "if_exists='update'" in out
    assert not [r for r in api_requests(emulator) if r.method != "GET"]


def test_reuse_warns_when_several_dashboards_have_the_name(emulator, posthog_conn, capfd):
    first = emulator.state.add_dashboard("Twin")
    second = emulator.state.add_dashboard("Twin")
    result = PostHogCreateDashboardOperator(task_id="create", name="Twin").execute({})
    assert result["id"] == first["id"]
    assert (
        f"2 PostHog dashboards are named 'Twin' (ids {first['id']}, {second['id']})" in capfd.readouterr().out
    )


def test_collaborators_on_the_create_operator_work_on_the_first_run(emulator, posthog_conn):
    op = PostHogCreateDashboardOperator(
        task_id="create", name="Warehouse health", collaborators=[SEED.alice_uuid, SEED.bob_uuid]
    )
    assert op.restriction_level == 37
    result = op.execute({})
    assert result["created"] is True and result["collaborators"] == [SEED.alice_uuid, SEED.bob_uuid]
    assert emulator.state.dashboards[result["id"]]["restriction_level"] == 37
    added = {c["user_uuid"] for c in emulator.state.collaborators if c["dashboard_id"] == result["id"]}
    assert added == {SEED.alice_uuid, SEED.bob_uuid}
    # A re-run adds nobody twice.
    assert op.execute({})["created"] is False
    assert len([c for c in emulator.state.collaborators if c["dashboard_id"] == result["id"]]) == 2


def test_collaborators_with_the_lowest_restriction_level_fail_when_the_dag_is_parsed():
    with pytest.raises(ValueError, match="collaborators need restriction_level=37"):
        PostHogCreateDashboardOperator(
            task_id="create", name="x", restriction_level=21, collaborators=[SEED.alice_uuid]
        )
    with pytest.raises(ValueError, match="Invalid collaborators 'nobody'"):
        PostHogCreateDashboardOperator(task_id="create", name="x", collaborators=["nobody"])


def test_collaborator_on_a_dashboard_of_the_current_model_is_refused_before_the_request(
    emulator, posthog_conn
):
    dashboard = emulator.state.add_dashboard("Warehouse health", restriction_level=21)
    op = PostHogAddDashboardCollaboratorOperator(
        task_id="add", dashboard_id=dashboard["id"], user_uuid=SEED.bob_uuid
    )
    with pytest.raises(PostHogDashboardAccessError) as raised:
        op.execute({})
    message = str(raised.value)
    assert f"Dashboard {dashboard['id']} ('Warehouse health') has restriction_level=21" in message
    assert "collaborators play no part" in message
    assert f"PostHogSetDashboardAccessOperator(dashboard_id={dashboard['id']}, editors=[...])" in message
    assert [r.method for r in api_requests(emulator)] == ["GET"]


def test_collaborator_without_access_control_says_the_organization_needs_it(emulator, posthog_conn):
    emulator.state.set_access_control(False)
    op = PostHogAddDashboardCollaboratorOperator(
        task_id="add", dashboard_id=SEED.restricted_dashboard_id, user_uuid=SEED.bob_uuid
    )
    with pytest.raises(PostHogDashboardAccessError, match="lacks PostHog's paid access-control feature"):
        op.execute({})
    assert [r.method for r in api_requests(emulator)] == ["GET"]


def test_hook_update_dashboard_sends_only_the_given_fields(emulator, posthog_conn):
    with PostHogHook() as hook:
        updated = hook.update_dashboard(SEED.web_dashboard_id, description="new", pinned=True)
        assert updated["description"] == "new" and updated["pinned"] is True
        assert _calls(emulator) == [
            ("PATCH", f"dashboards/{SEED.web_dashboard_id}/", {"description": "new", "pinned": True})
        ]
        with pytest.raises(ValueError, match="at least one field"):
            hook.update_dashboard(SEED.web_dashboard_id)
        with pytest.raises(ValueError, match="Invalid restriction_level 5"):
            hook.update_dashboard(SEED.web_dashboard_id, restriction_level=5)
    assert len(api_requests(emulator)) == 1
