"""The probe, built and read in one module: its script run by bash against directories laid out
in a temp dir, and its answer parsed into a report (prepare and check both read that report)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from ferryman.commands import probe
from ferryman.commands.probe import Need, ProbeReport
from ferryman.commands.remote import Layout
from ferryman.pipeline.check import Check, checks_from_probe
from ferryman.pipeline.prepare import parse_probe

ANSWER = (
    "need\tcommand\tphp\tok\n"
    "need\tpackage\tlibfoo\tmissing\n"
    "webroot\tlink\t/srv/releases/site/r2\n"
    "parent\tok\n"
    "releases\tok\n"
    "tool\ttar\tok\n"
    "tool\tbash\tok\n"
    "tool\ttimeout\tmissing\n"
    "tool\tcp\tok\n"
    "optional\tzstd\tmissing\n"
    "release\tr1\n"
    "release\tr2\t" + "a" * 40 + "\n"
)


def _layout(root: Path) -> Layout:
    return Layout(
        webroot=str(root / "www" / "site"),
        releases=str(root / "releases" / "site"),
        shared_dir=str(root / "releases" / "shared"),
    )


def _run(argv: tuple[str, ...]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30)
    return done.stdout


def test_an_answer_is_read_into_one_report_with_every_fact_typed():
    assert probe.parse(ANSWER) == ProbeReport(
        webroot="link",
        link="/srv/releases/site/r2",
        parent_ok=True,
        releases_writable=True,
        tools={"tar": True, "bash": True, "timeout": False, "cp": True},
        optional={"zstd": False},
        needs=(Need("command", "php", True), Need("package", "libfoo", False)),
        releases={"r1": None, "r2": "a" * 40},
    )


def test_the_problems_of_a_report_are_named_in_the_order_the_probe_asks():
    assert probe.parse(ANSWER).problems() == [
        "requires package libfoo, which is missing",
        "timeout is not installed",
    ]
    broken = probe.parse("webroot\treal\nparent\tmissing\nreleases\tunwritable\n")
    assert broken.problems() == [
        "webroot is a real directory (or file), not a symlink: refusing to replace it",
        "the webroot's parent directory does not exist",
        "the releases directory cannot be created or written",
    ]


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ("", "has no webroot, parent, releases line"),
        ("webroot\tmissing\nparent\tok\n", "has no releases line"),
        ("webroot\tsideways\nparent\tok\nreleases\tok\n", "unknown webroot state 'sideways'"),
        ("webroot\tmissing\nparent\tok\nreleases\tok\ntool\ttar\n", "broken tool line"),
        ("webroot\nparent\tok\nreleases\tok\n", "broken webroot line"),
    ],
)
def test_a_cut_or_broken_answer_is_refused_never_guessed_at(answer, error):
    with pytest.raises(ValueError, match=error):
        probe.parse(answer)


def test_lines_the_probe_never_prints_are_ignored():
    report = probe.parse("motd from a login script\nwebroot\tmissing\nparent\tok\nreleases\tok\n")
    assert report == ProbeReport(webroot="missing")


def test_prepare_keeps_the_link_releases_and_optional_tools_of_the_report():
    facts, problems = parse_probe(ANSWER.replace("zstd\tmissing", "zstd\tok"))
    assert facts.link == "/srv/releases/site/r2"
    assert facts.releases == {"r1": None, "r2": "a" * 40}
    assert facts.tools == {"zstd"}
    assert facts.live_release(Layout("/srv/www/site", "/srv/releases/site", "/s")) == "r2"
    assert problems == ["requires package libfoo, which is missing", "timeout is not installed"]


def test_check_reports_one_line_per_fact_of_the_same_report():
    checks = checks_from_probe("web1", probe.parse(ANSWER))
    assert checks == [
        Check("web1", "requires command php", True, ""),
        Check("web1", "requires package libfoo", False, "install the package libfoo on this host"),
        Check("web1", "webroot is not a real directory", True, "symlink to /srv/releases/site/r2"),
        Check("web1", "webroot parent exists", True),
        Check("web1", "releases dir writable", True),
        Check("web1", "tar present", True),
        Check("web1", "bash present", True),
        Check("web1", "timeout present", False),
        Check("web1", "cp present", True),
        Check("web1", "zstd present (optional)", True, "missing: packages fall back to gzip"),
    ]
    real = checks_from_probe("web1", probe.parse("webroot\treal\nparent\tok\nreleases\tok\n"))
    assert real[0] == Check(
        "web1",
        "webroot is not a real directory",
        False,
        "a real directory or file: Ferryman will refuse to replace it",
    )


def test_on_a_fresh_host_the_probe_makes_the_releases_dir_and_finds_no_webroot(tmp_path):
    layout = _layout(tmp_path)
    (tmp_path / "www").mkdir()
    report = probe.parse(_run(probe.probe(layout)))
    assert report.webroot == "missing"
    assert report.link is None
    assert report.parent_ok and report.releases_writable
    assert Path(layout.releases).is_dir()
    assert report.releases == {}
    assert set(report.tools) == {"tar", "bash", "timeout", "cp"}
    assert all(report.tools.values())
    assert set(report.optional) == {"zstd"}
    assert report.problems() == []


def test_the_probe_reads_the_live_link_and_each_release_with_its_manifest_hash(tmp_path):
    layout = _layout(tmp_path)
    (tmp_path / "www").mkdir()
    for name in ("r1", "r2"):
        Path(layout.release(name)).mkdir(parents=True)
    manifest = b"f index.html 0644 sha1\n"
    Path(layout.release("r2"), ".ferryman-manifest").write_bytes(manifest)
    Path(layout.release("r2"), "file").write_text("not a release\n")
    os.symlink(layout.release("r2"), layout.webroot)
    Path(layout.releases, ".ferryman-run").mkdir()  # bookkeeping, never a release
    report = probe.parse(_run(probe.probe(layout)))
    assert report.webroot == "link"
    assert report.link == layout.release("r2")
    assert report.releases == {"r1": None, "r2": hashlib.sha1(manifest).hexdigest()}
    only = probe.parse(_run(probe.probe(layout, only=["r1", "r2", "r3"])))
    assert only.releases == {"r2": "present"}  # only releases with a manifest count


def test_a_real_directory_webroot_a_missing_parent_or_an_unwritable_releases_dir_is_named(
    tmp_path,
):
    layout = _layout(tmp_path)
    Path(layout.webroot).mkdir(parents=True)
    assert probe.parse(_run(probe.probe(layout))).webroot == "real"
    (tmp_path / "blocked").write_text("a file where a directory should be\n")
    orphan = Layout(
        str(tmp_path / "gone" / "site"), str(tmp_path / "blocked" / "site"), layout.shared_dir
    )
    report = probe.parse(_run(probe.probe(orphan)))
    assert (report.webroot, report.parent_ok, report.releases_writable) == (
        "missing",
        False,
        False,
    )


def test_required_commands_are_looked_up_on_the_path_and_hostile_names_stay_names(tmp_path):
    layout = _layout(tmp_path)
    (tmp_path / "www").mkdir()
    hostile = f"$(touch {tmp_path}/pwned)"
    argv = probe.probe(layout, commands=["bash", "no-such-tool-here", hostile])
    report = probe.parse(_run(argv))
    assert report.needs == (
        Need("command", "bash", True),
        Need("command", "no-such-tool-here", False),
        Need("command", hostile, False),
    )
    assert not (tmp_path / "pwned").exists()


def test_the_probe_script_is_valid_bash_for_every_form():
    layout = Layout("/srv/www/a site", "/srv/releases/a site", "/srv/shared")
    for argv in (
        probe.probe(layout),
        probe.probe(layout, ["php"], ["libc6"]),
        probe.probe(layout, only=["r1", "it's"]),
    ):
        assert argv[:2] == ("bash", "-c")
        subprocess.run(["bash", "-n", "-c", argv[2]], check=True, timeout=10)
