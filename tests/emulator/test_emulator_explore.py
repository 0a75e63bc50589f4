"""The emulator is easy to explore: its banner shows users, dashboards, keys and a connection
line; ``--key`` adds keys with given scopes; bad control bodies get a 400 naming the problem."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import requests
from phenv_emulator import SEED

from tests.helpers.emulator import emulator_cli


@pytest.fixture(scope="module")
def cli():
    """The banner of one emulator started with an extra key; the tests of this module share it."""
    with emulator_cli("--key", "phx_readonly=batch_export:read,dashboard:read") as process:
        lines = []
        assert process.stdout is not None
        while not lines or not lines[-1].startswith("export AIRFLOW_CONN_POSTHOG_DEFAULT="):
            line = process.stdout.readline()
            assert line, "\n".join(lines)
            lines.append(line.rstrip("\n"))
        yield lines


def test_banner_lists_users_dashboards_keys_and_a_connection_line(cli):
    text = "\n".join(cli)
    assert re.search(rf"{SEED.alice_uuid}\s+alice@example.com\s+member", text)
    assert re.search(rf"{SEED.owner_uuid}\s+hedgy@example.com\s+admin", text)
    assert re.search(rf"{SEED.carol_uuid}\s+carol@example.com\s+no access", text)
    assert re.search(r"3\s+'Board metrics'\s+level 37\s+collaborators: alice@example.com", text)
    assert "Other org dashboard" not in text  # not in this project
    assert "phx_readonly  batch_export:read,dashboard:read" in text
    assert "/_emulator/reset" in text
    conn = json.loads(cli[-1].split("=", 1)[1].strip("'"))
    assert conn["conn_type"] == "posthog" and conn["extra"] == {"project_id": "1"}
    assert conn["host"].startswith("http://127.0.0.1:")


def test_extra_key_has_only_its_scopes_and_survives_a_reset(cli):
    url = json.loads(cli[-1].split("=", 1)[1].strip("'"))["host"]
    headers = {"Authorization": "Bearer phx_readonly"}
    export = f"{url}/api/projects/1/batch_exports/{SEED.s3_export_id}/"
    assert requests.get(export, headers=headers, timeout=5).status_code == 200
    refused = requests.post(export + "pause/", headers=headers, timeout=5)
    assert refused.status_code == 403 and "batch_export:write" in refused.json()["detail"]
    assert requests.post(f"{url}/_emulator/reset", timeout=5).status_code == 204
    assert requests.get(export, headers=headers, timeout=5).status_code == 200
    scopes = requests.get(f"{url}/api/personal_api_keys/@current/", headers=headers, timeout=5).json()[
        "scopes"
    ]
    assert scopes == ["batch_export:read", "dashboard:read"]


def test_a_malformed_key_flag_is_a_usage_error():
    done = subprocess.run(
        [sys.executable, "-m", "phenv_emulator", "--key", "phx_abcd=everything"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "expected KEY=SCOPES" in done.stderr


@pytest.mark.parametrize(
    ("path", "body", "detail", "attr"),
    [
        ("faults", [{"kind": "drop"}], "Expected a JSON object with the fields of a fault", None),
        ("faults", {"kind": "status", "status": 503, "code": 1}, "Unknown field 'code' for a fault", "code"),
        ("faults", {"status": 503}, "Field 'kind' is required for a fault.", "kind"),
        (
            "faults",
            {"kind": "status", "status": "503"},
            "Field 'status' of a fault must be a number",
            "status",
        ),
        ("faults", {"kind": "explode"}, "unknown fault kind 'explode'", None),
        (f"run_outcome/{SEED.s3_export_id}", {"result": "failed"}, "Unknown field 'result'", "result"),
        (f"run_outcome/{SEED.s3_export_id}", {"duration": "long"}, "'duration' of a run outcome", "duration"),
    ],
)
def test_bad_control_bodies_get_a_validation_error(emulator, path, body, detail, attr):
    response = requests.post(f"{emulator.url}/_emulator/{path}", json=body, timeout=5)
    assert response.status_code == 400
    error = response.json()
    assert error["type"] == "validation_error" and detail in error["detail"], error
    assert "TypeError" not in error["detail"]
    assert error["attr"] == attr


def test_state_lists_users_with_their_project_access(emulator):
    users = requests.get(f"{emulator.url}/_emulator/state", timeout=5).json()["users"]
    access = {user["email"]: user["project_access"] for user in users}
    assert access == {
        "hedgy@example.com": "admin",
        "alice@example.com": "member",
        "bob@example.com": "member",
        "carol@example.com": None,
    }
