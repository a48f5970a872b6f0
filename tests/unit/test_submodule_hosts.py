"""Submodules may only come from the repository's own host, and the checkout's ssh can
verify no other host: pure checks of the URL rules and the known_hosts filter."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from ferryman.errors import VcsError
from ferryman.vcs.base import check_submodule_url, endpoint, known_hosts_for

REPO = "ssh://git@git.example.com:2222/team/app.git"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ssh://git@git.example.com:2222/x.git", ("git.example.com", 2222)),
        ("ssh://git.example.com/x.git", ("git.example.com", 22)),
        ("git@git.example.com:team/x.git", ("git.example.com", 22)),
        ("https://git.example.com/x.git", ("git.example.com", 443)),
        ("file:///srv/x.git", None),
    ],
)
def test_the_endpoint_of_a_url_is_its_host_and_port(url, expected):
    assert endpoint(url) == expected


def test_a_submodule_on_the_repositorys_host_passes_and_relative_ones_too():
    check_submodule_url("lib", "ssh://deploy@git.example.com:2222/team/lib.git", REPO, False)
    check_submodule_url("lib", "../lib.git", REPO, False)


@pytest.mark.parametrize(
    "url",
    [
        "ssh://root@10.0.0.13/srv/ops.git",  # a production server, with the space's key
        "ssh://git@git.example.com/team/lib.git",  # same host, other port
        "root@10.0.0.13:/srv/ops.git",
        "ssh://git@git.example.com:2222@10.0.0.13/x.git",
    ],
)
def test_a_submodule_on_another_host_is_refused(url):
    with pytest.raises(VcsError, match=r"own (host|protocol)"):
        check_submodule_url("evil", url, REPO, False)


def test_only_the_repository_hosts_lines_go_into_the_sandbox_known_hosts():
    salt = b"0123456789abcdefghij"
    hashed = base64.b64encode(
        hmac.new(salt, b"[git.example.com]:2222", hashlib.sha1).digest()
    ).decode()
    text = (
        b"10.0.0.13 ssh-ed25519 AAAAprod\n"
        b"[git.example.com]:2222 ssh-ed25519 AAAAgit\n"
        b"git.example.com ssh-ed25519 AAAAotherport\n"
        + f"|1|{base64.b64encode(salt).decode()}|{hashed} ssh-ed25519 AAAAhashed\n".encode()
        + b"@cert-authority * ssh-ed25519 AAAAca\n"
    )
    kept = known_hosts_for(text, "git.example.com", 2222)
    assert kept.splitlines() == [
        b"[git.example.com]:2222 ssh-ed25519 AAAAgit",
        f"|1|{base64.b64encode(salt).decode()}|{hashed} ssh-ed25519 AAAAhashed".encode(),
    ]
