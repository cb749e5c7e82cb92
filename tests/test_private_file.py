"""The demo secrets file on a shared machine (issue 12): written and kept with mode 0600
whatever mode it had, and never opened through a symbolic link (nor when it is a hard link,
someone else's file or no regular file) — refused with a message naming
HOOKYARD_DEMO_SECRETS_FILE, and whatever the link points to left untouched."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hookyard.config import Settings
from hookyard.private_file import UnsafeFile, read_private, write_private
from hookyard.sources import SourcesError, admin_token, demo_secrets, load_sources
from tests.conftest import ROOT


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def demo(tmp_path: Path, secrets_file: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", demo_secrets_file=secrets_file
    )


def test_a_new_secrets_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "demo.env"
    values, generated = demo_secrets(demo(tmp_path, path), create=True)
    assert generated and mode_of(path) == 0o600
    assert f"HOOKYARD_ADMIN_TOKEN={values['HOOKYARD_ADMIN_TOKEN']}" in path.read_text()


def test_a_file_with_a_looser_mode_is_made_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "demo.env"
    path.write_text("HOOKYARD_ADMIN_TOKEN=kept-token\n")
    path.chmod(0o644)
    values, generated = demo_secrets(demo(tmp_path, path), create=True)
    assert values["HOOKYARD_ADMIN_TOKEN"] == "kept-token"
    assert "HOOKYARD_ADMIN_TOKEN" not in generated
    assert mode_of(path) == 0o600
    assert "HOOKYARD_ADMIN_TOKEN=kept-token" in path.read_text()  # rewritten with the rest
    # Read only (nothing to generate), a loose mode is fixed all the same.
    path.chmod(0o664)
    assert admin_token(demo(tmp_path, path)) == "kept-token"
    assert mode_of(path) == 0o600


@pytest.mark.parametrize("target_exists", [True, False])
def test_a_symbolic_link_is_refused_and_its_target_untouched(
    tmp_path: Path, target_exists: bool
) -> None:
    target = tmp_path / "someone-elses-file"
    if target_exists:
        target.write_text("precious\n")
    link = tmp_path / "demo.env"
    link.symlink_to(target)
    with pytest.raises(SourcesError) as refused:
        load_sources(demo(tmp_path, link))
    assert "symbolic link" in str(refused.value)
    assert "HOOKYARD_DEMO_SECRETS_FILE" in str(refused.value)
    if target_exists:
        assert target.read_text() == "precious\n"
    else:
        assert not target.exists()


def test_a_hard_link_a_fifo_and_a_directory_are_refused(tmp_path: Path) -> None:
    original = tmp_path / "original"
    original.write_text("HOOKYARD_ADMIN_TOKEN=x\n")
    hard = tmp_path / "hard.env"
    os.link(original, hard)
    fifo = tmp_path / "fifo.env"
    os.mkfifo(fifo)
    for path, why in ((hard, "hard links"), (fifo, "not a regular file"), (tmp_path, "regular")):
        with pytest.raises(UnsafeFile, match=why):
            read_private(path)
        with pytest.raises(SourcesError, match="HOOKYARD_DEMO_SECRETS_FILE"):
            demo_secrets(demo(tmp_path, path), create=True)
    assert original.read_text() == "HOOKYARD_ADMIN_TOKEN=x\n"


def test_write_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "secrets"
    assert read_private(path) is None
    write_private(path, "A=1\nB=2\n")
    write_private(path, "A=3\n")  # replaced, not appended to
    assert read_private(path) == "A=3\n" and mode_of(path) == 0o600


def test_the_cli_refuses_a_linked_secrets_file_naming_the_setting(tmp_path: Path) -> None:
    link = tmp_path / "demo.env"
    link.symlink_to(tmp_path / "elsewhere")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKYARD_")}
    env |= {
        "PYTHONPATH": str(ROOT),
        "HOOKYARD_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
        "HOOKYARD_DEMO_SECRETS_FILE": str(link),
    }
    done = subprocess.run(
        [sys.executable, "-m", "hookyard.cli", "sources", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "symbolic link" in done.stderr and "HOOKYARD_DEMO_SECRETS_FILE" in done.stderr
    assert not (tmp_path / "elsewhere").exists()
