"""
Dashboard access in PostHog's current model: ``editors``/``viewers``/``default_access`` converge
through access controls, and every combination PostHog would accept without effect is refused
before the first write.
"""

from __future__ import annotations

import json

import pytest
import requests
from phenv_emulator import SEED

from airflow_provider_phenv.hooks.posthog import PostHogHook
from airflow_provider_phenv.operators.dashboards import (
    PostHogAddDashboardCollaboratorOperator,
    PostHogCreateDashboardOperator,
    PostHogDashboardAccessError,
    PostHogSetDashboardAccessOperator,
)
from tests.helpers.emulator import api_requests, connection_json

ALICE, BOB = "alice@example.com", "bob@example.com"


def _writes(emulator):
    return [(r.method, r.path, r.body) for r in api_requests(emulator) if r.method != "GET"]


def _rules(emulator, dashboard_id):
    """The dashboard's stored rules as ``{membership id or None: level}``."""
    return {
        rule["organization_member"]: rule["access_level"]
        for rule in emulator.state.access_controls
        if rule["resource_id"] == str(dashboard_id) and not rule["role"]
    }


def _patch_as(emulator, user_uuid, dashboard_id):
    """PATCH the dashboard with a key of ``user_uuid``: what that person may do in PostHog."""
    key = emulator.state.add_api_key(["*"], user_uuid)
    return requests.patch(
        f"{emulator.url}/api/projects/1/dashboards/{dashboard_id}/",
        json={"description": "edited"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=5,
    )


def test_alice_and_bob_edit_everyone_else_views_and_a_rerun_writes_nothing(emulator, posthog_conn, capfd):
    carol = emulator.state.add_members(1)[0]  # a third member, who gets the default
    op = PostHogCreateDashboardOperator(
        task_id="create", name="Pipeline health", editors=[ALICE, BOB], default_access="viewer"
    )
    result = op.execute({})
    dashboard_id = result["id"]
    assert result["created"] is True
    assert result["access"] == {"default": "viewer", "editors": [ALICE, BOB], "viewers": []}
    assert emulator.state.dashboards[dashboard_id]["restriction_level"] == 21
    assert _rules(emulator, dashboard_id) == {
        None: "viewer",
        SEED.alice_membership_id: "editor",
        SEED.bob_membership_id: "editor",
    }
    out = capfd.readouterr().out
    assert f"PostHog dashboard {dashboard_id}: alice@example.com -> editor." in out
    assert f"PostHog dashboard {dashboard_id}: default -> viewer." in out
    # What that means in PostHog: alice and bob may edit, everyone else may not.
    assert _patch_as(emulator, SEED.alice_uuid, dashboard_id).status_code == 200
    assert _patch_as(emulator, SEED.bob_uuid, dashboard_id).status_code == 200
    refused = _patch_as(emulator, carol["user_uuid"], dashboard_id)
    assert refused.status_code == 403
    assert refused.json()["detail"] == "You do not have editor access to this resource."

    emulator.clear_requests()
    again = op.execute({})
    # The project is read once, for its organization; the members list reuses that id.
    assert [r.path for r in api_requests(emulator)].count("/api/projects/1/") == 1
    assert again["created"] is False and again["access"] == result["access"]
    assert _writes(emulator) == []  # 0 writes the second time
    assert "already matches this task" in capfd.readouterr().out


def test_the_same_dag_without_the_access_control_feature_fails_before_any_write(emulator, posthog_conn):
    emulator.state.set_product_features([])
    op = PostHogCreateDashboardOperator(
        task_id="create", name="Pipeline health", editors=[ALICE, BOB], default_access="viewer"
    )
    with pytest.raises(PostHogDashboardAccessError) as raised:
        op.execute({})
    message = str(raised.value)
    assert "lacks PostHog's access-control feature" in message and "'access_control'" in message
    assert "Hedgebox" in message  # the organization, by name
    assert _writes(emulator) == []
    assert not [d for d in emulator.state.dashboards.values() if d["name"] == "Pipeline health"]


def test_set_access_converges_and_reports_each_change(emulator, posthog_conn, capfd):
    dashboard_id = SEED.web_dashboard_id
    emulator.state.add_access_control(dashboard_id, "viewer", organization_member=SEED.bob_membership_id)
    emulator.state.add_access_control(dashboard_id, "none")
    op = PostHogSetDashboardAccessOperator(
        task_id="access", dashboard_id=dashboard_id, editors=[SEED.alice_uuid], default_access="viewer"
    )
    result = op.execute({})
    assert result["dashboard_id"] == dashboard_id
    assert result["changed"] == [
        {"default": True, "old": "none", "new": "viewer"},
        {"member": ALICE, "old": None, "new": "editor"},
        {"member": BOB, "old": "viewer", "new": None},  # in neither list: back to the default
    ]
    assert result["access"] == {"default": "viewer", "editors": [ALICE], "viewers": []}
    assert _rules(emulator, dashboard_id) == {None: "viewer", SEED.alice_membership_id: "editor"}
    puts = [body for method, _, body in _writes(emulator)]
    assert {"access_level": None, "organization_member": SEED.bob_membership_id} in puts
    assert f"PostHog dashboard {dashboard_id}: bob@example.com -> default." in capfd.readouterr().out

    emulator.clear_requests()
    assert op.execute({})["changed"] == []
    assert _writes(emulator) == []


def test_people_are_left_alone_when_neither_list_is_given(emulator, posthog_conn):
    dashboard_id = SEED.web_dashboard_id
    emulator.state.add_access_control(dashboard_id, "viewer", organization_member=SEED.bob_membership_id)
    result = PostHogSetDashboardAccessOperator(
        task_id="access", dashboard_id=dashboard_id, default_access="none"
    ).execute({})
    assert result["changed"] == [{"default": True, "old": None, "new": "none"}]
    assert _rules(emulator, dashboard_id) == {None: "none", SEED.bob_membership_id: "viewer"}


def test_editors_on_a_legacy_dashboard_are_refused_before_any_write(emulator, posthog_conn):
    op = PostHogSetDashboardAccessOperator(
        task_id="access", dashboard_id=SEED.restricted_dashboard_id, editors=[BOB]
    )
    with pytest.raises(PostHogDashboardAccessError) as raised:
        op.execute({})
    message = str(raised.value)
    assert "legacy access model (restriction_level=37" in message
    assert "restriction_level=21, if_exists='update'" in message and "collaborators=[...]" in message
    assert _writes(emulator) == []


def test_the_create_operator_may_move_a_legacy_dashboard_to_the_current_model(emulator, posthog_conn):
    old = emulator.state.add_dashboard("Legacy", restriction_level=37)
    op = PostHogCreateDashboardOperator(
        task_id="create", name="Legacy", restriction_level=21, if_exists="update", editors=[BOB]
    )
    result = op.execute({})
    assert result["updated"] == ["restriction_level"] and result["access"]["editors"] == [BOB]
    assert _rules(emulator, old["id"]) == {SEED.bob_membership_id: "editor"}
    reused = PostHogCreateDashboardOperator(task_id="c", name="Legacy", restriction_level=37)
    emulator.clear_requests()
    # Reusing it at 37 is only warned about (if_exists="reuse" never writes).
    assert reused.execute({})["id"] == old["id"] and _writes(emulator) == []


def test_a_collaborator_whom_access_control_keeps_below_editor_is_refused(emulator, posthog_conn):
    dashboard_id = SEED.restricted_dashboard_id
    emulator.state.add_access_control(dashboard_id, "viewer", organization_member=SEED.bob_membership_id)
    op = PostHogAddDashboardCollaboratorOperator(
        task_id="add", dashboard_id=dashboard_id, user_uuid=SEED.bob_uuid
    )
    with pytest.raises(PostHogDashboardAccessError) as raised:
        op.execute({})
    assert f"keep {SEED.bob_uuid} (viewer) below editor" in str(raised.value)
    assert _writes(emulator) == []
    # The default rule overrules too, but never the creator or an organization admin.
    carol = emulator.state.add_members(1)[0]["user_uuid"]
    emulator.state.add_access_control(dashboard_id, "none")
    op = PostHogAddDashboardCollaboratorOperator(task_id="add", dashboard_id=dashboard_id, user_uuid=carol)
    with pytest.raises(PostHogDashboardAccessError, match=r"\(none\) below editor"):
        op.execute({})
    owner = PostHogAddDashboardCollaboratorOperator(
        task_id="add", dashboard_id=dashboard_id, user_uuid=SEED.owner_uuid
    )
    assert owner.execute({})["inherent_access"] is True


def test_level_37_without_the_feature_is_refused_before_the_create(emulator, posthog_conn):
    emulator.state.set_access_control(False)
    for kwargs in ({"restriction_level": 37}, {"collaborators": [SEED.bob_uuid]}):
        op = PostHogCreateDashboardOperator(task_id="create", name="Restricted", **kwargs)
        with pytest.raises(PostHogDashboardAccessError, match="lacks PostHog's access-control feature"):
            op.execute({})
    assert _writes(emulator) == []


def test_someone_outside_the_organization_is_refused_before_any_write(emulator, posthog_conn):
    op = PostHogSetDashboardAccessOperator(
        task_id="access", dashboard_id=SEED.web_dashboard_id, editors=["carol@example.com", BOB]
    )
    with pytest.raises(PostHogDashboardAccessError, match=r"carol@example\.com is not a member"):
        op.execute({})
    assert _writes(emulator) == []


def test_a_key_without_the_access_scopes_is_refused_naming_them(emulator, monkeypatch):
    key = emulator.state.add_api_key(["dashboard:write", "organization:read"])
    conn = json.loads(connection_json(emulator))
    monkeypatch.setenv("AIRFLOW_CONN_POSTHOG_DEFAULT", json.dumps({**conn, "password": key}))
    op = PostHogSetDashboardAccessOperator(
        task_id="access", dashboard_id=SEED.web_dashboard_id, editors=[BOB]
    )
    with pytest.raises(PostHogDashboardAccessError) as raised:
        op.execute({})
    assert "lacks the scopes access_control:write, organization_member:read" in str(raised.value)
    assert _writes(emulator) == []


def test_a_key_whose_user_may_not_manage_the_dashboard_is_refused(emulator, posthog_conn):
    dashboard = emulator.state.add_dashboard("Alice's", created_by=SEED.alice_uuid)
    emulator.state.set_membership_level(1)  # the key's user: a plain member, not its creator
    op = PostHogSetDashboardAccessOperator(task_id="access", dashboard_id=dashboard["id"], editors=[BOB])
    with pytest.raises(
        PostHogDashboardAccessError, match="only its creator and the project's or organization"
    ):
        op.execute({})
    assert _writes(emulator) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"editors": [ALICE], "collaborators": [SEED.bob_uuid]},
            "cannot be used together",
        ),
        ({"editors": [ALICE], "restriction_level": 37}, "need restriction_level=21"),
        ({"editors": [ALICE], "viewers": ["ALICE@example.com"]}, "cannot be both in editors and in viewers"),
        ({"default_access": "manager"}, "Invalid default_access 'manager'"),
        ({"editors": "alice@example.com"}, "expected a list of user emails or UUIDs"),
        ({"viewers": ["nobody"]}, "Invalid viewers 'nobody'"),
    ],
)
def test_bad_access_input_fails_when_the_dag_is_parsed(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PostHogCreateDashboardOperator(task_id="create", name="x", **kwargs)


def test_set_access_needs_something_to_set():
    with pytest.raises(ValueError, match="nothing to set"):
        PostHogSetDashboardAccessOperator(task_id="access", dashboard_id=1)


def test_hook_reads_every_member_and_removes_a_rule(emulator, posthog_conn):
    emulator.state.add_members(150)
    with PostHogHook() as hook:
        members = hook.list_organization_members()
        assert len(members) == 153 and len({m["id"] for m in members}) == 153
        assert (
            hook.set_dashboard_access_control(
                SEED.web_dashboard_id, access_level="viewer", organization_member=SEED.bob_membership_id
            )["access_level"]
            == "viewer"
        )
        assert (
            hook.set_dashboard_access_control(
                SEED.web_dashboard_id, access_level=None, organization_member=SEED.bob_membership_id
            )
            is None
        )
        listed = hook.list_dashboard_access_controls(SEED.web_dashboard_id)
    assert listed["access_controls"] == []
    pages = [r for r in api_requests(emulator) if r.path.endswith("/members/")]
    assert len(pages) == 2


def test_hook_checks_access_input_before_sending(emulator, posthog_conn):
    with PostHogHook() as hook:
        with pytest.raises(ValueError, match="Invalid access_level 'owner'"):
            hook.set_dashboard_access_control(1, access_level="owner")
        with pytest.raises(ValueError, match="a member or a role, not both"):
            hook.set_dashboard_access_control(
                1, access_level="viewer", organization_member=SEED.bob_membership_id, role=SEED.role_id
            )
        with pytest.raises(ValueError, match="Invalid organization_member 'bob'"):
            hook.set_dashboard_access_control(1, access_level="viewer", organization_member="bob")
    assert api_requests(emulator) == []
