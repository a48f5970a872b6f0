"""`ferryman group` against a real server: a superuser makes a group and adds a user, an
owner grants it a role in a space, and the user sees the space until the group is revoked."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.fleet


def _spaces(cli, user: str) -> set[str]:
    result = cli("space", "list", "--json", user=user)
    return {row["name"] for row in json.loads(result.stdout)}


def test_a_user_follows_the_group_granted_to_a_space_and_revoked(cli, signed_in):
    signed_in("root")
    signed_in("olga", "owner")
    signed_in("carl", "reporter")  # made a member, then taken out below
    cli("space", "remove-member", "default", "carl", user="olga")
    assert _spaces(cli, "carl") == set()

    cli("group", "create", "ops", "--display-name", "运维组", user="root")
    cli("group", "add-member", "ops", "carl", user="root")
    refused = cli("group", "add-member", "ops", "olga", check=False, user="olga")
    assert refused.returncode != 0
    granted = cli("group", "grant", "ops", "default", "--role", "developer", user="olga")
    assert "group ops is developer in default" in granted.stdout
    assert _spaces(cli, "carl") == {"default"}
    listed = json.loads(cli("group", "list", "--json", user="carl").stdout)
    assert listed[0]["name"] == "ops" and listed[0]["members"] == ["carl"]

    renamed = cli("group", "rename", "ops", "sre", user="root")
    assert "renamed group ops to sre" in renamed.stdout
    assert cli("group", "rename", "sre", "x", check=False, user="olga").returncode != 0
    cli("group", "set", "sre", "--description", "on call", user="root")
    listed = json.loads(cli("group", "list", "--json", user="carl").stdout)
    assert (listed[0]["name"], listed[0]["description"]) == ("sre", "on call")
    assert _spaces(cli, "carl") == {"default"}  # the role follows the renamed group

    cli("group", "revoke", "sre", "default", user="olga")
    assert _spaces(cli, "carl") == set()
