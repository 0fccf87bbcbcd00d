"""`griddispatch users add|list|disable`."""

from __future__ import annotations

from click.testing import CliRunner

from dispatch.cli import main
from tests.geodata import G1, tree_frame


def run(database_url: str, *args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), env={"DATABASE_URL": database_url}, input=input,
                              catch_exceptions=False)


def test_add_list_disable(database_url, tmp_path):
    source = tmp_path / "tree.geojson"
    tree_frame().to_file(source, engine="pyogrio")
    assert run(database_url, "import", str(source)).exit_code == 0

    added = run(database_url, "users", "add", "root", "--role", "admin", "--password", "root-pw")
    assert added.exit_code == 0 and "added admin root" in added.output
    manager = run(database_url, "users", "add", "wang", "--role", "grid_manager", "--name", "王网格员",
                  "--grid", G1, input="wang-pw\nwang-pw\n")
    assert manager.exit_code == 0, manager.output
    assert "wang-pw" not in manager.output  # the prompt hides what is typed
    committee = run(database_url, "users", "add", "li", "--role", "committee", "--scope", "320104",
                    "--password", "li-pw-1")
    assert committee.exit_code == 0, committee.output

    listed = run(database_url, "users", "list")
    assert listed.exit_code == 0 and "3 accounts" in listed.output
    wang = next(line for line in listed.output.splitlines() if " wang " in line)
    assert "grid_manager" in wang and G1 in wang and "王网格员" in wang and " yes " in wang
    only = run(database_url, "users", "list", "--role", "committee").output
    assert "li" in only and "root" not in only and "1 account" in only

    assert run(database_url, "users", "disable", "WANG").exit_code == 0  # as usernames are taken
    wang = next(line for line in run(database_url, "users", "list").output.splitlines() if " wang " in line)
    assert " no " in wang


def test_bad_input_exits_non_zero_with_a_message(database_url):
    bad_role = run(database_url, "users", "add", "x", "--role", "boss", "--password", "pw-pw")
    assert bad_role.exit_code == 1
    assert "role" in bad_role.output and "grid_manager" in bad_role.output
    assert run(database_url, "users", "list").output.strip().endswith("0 accounts")

    no_scope = run(database_url, "users", "add", "x", "--role", "committee", "--password", "pw-pw")
    assert no_scope.exit_code == 1 and "scope" in no_scope.output
    no_grid = run(database_url, "users", "add", "x", "--role", "grid_manager", "--password", "pw-pw",
                  "--grid", "NOPE")
    assert no_grid.exit_code == 1 and "NOPE" in no_grid.output
    assert run(database_url, "users", "list").output.strip().endswith("0 accounts")  # all or nothing

    run(database_url, "users", "add", "x", "--role", "admin", "--password", "pw-pw")
    duplicate = run(database_url, "users", "add", "x", "--role", "admin", "--password", "pw-pw")
    assert duplicate.exit_code == 1 and "taken" in duplicate.output
    unknown = run(database_url, "users", "disable", "nobody")
    assert unknown.exit_code == 1 and "nobody" in unknown.output
    assert run(database_url, "users", "list", "--role", "boss").exit_code == 1


def test_disabling_a_manager_hands_their_unfinished_incidents_on(world):
    """As over REST: `users disable` routes a manager's unfinished reports afresh."""
    incident = world.report(category="no_water").get_json()  # in G1: M1
    database_url = world.app.extensions["griddispatch.db"].url
    disabled = run(database_url, "users", "disable", "m1")
    assert disabled.exit_code == 0, disabled.output
    assert f"handed over 1 unfinished incident: {incident['public_id']}" in disabled.output
    now = world.get("admin", incident)
    assert now["manager"]["display_name"] not in ("M1", None) and now["version"] == incident["version"] + 1
    events = world.client.get(f"/api/v1/incidents/{incident['id']}/events",
                              headers=world.headers("admin")).get_json()["events"]
    assert (events[-1]["type"], events[-1]["actor"]["role"]) == ("handed_over", "system")
