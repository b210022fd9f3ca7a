"""README.md's commands work as printed, so the README cannot drift from the code.

Every ``manage.py NAME`` the README mentions is a real command; every command line in its ``sh`` blocks
parses against that command's own argument parser (options included); every ``make TARGET`` is a
Makefile target; the read-only commands run for real against a migrated database; and a command run
as a newcomer runs it (no SECRET_KEY variable) finds the local installation's var/secret_key while a
deployment serving a real host name still refuses to start without an explicit secret.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command, get_commands, load_command_class

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
MAKEFILE = (ROOT / "Makefile").read_text(encoding="utf-8")

# The read-only commands of "Useful commands", run for real (with their files made in tmp_path).
READ_ONLY = {"verify_audit", "compare_reports", "export_audit", "retention_purge"}


def sh_blocks(text: str) -> list[str]:
    """The lines of every ```sh block, without comments and blank lines."""
    lines: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split("  #", 1)[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def printed_argv(line: str) -> list[str]:
    """A README command line as argv: ``[--opt X]`` taken as written, ``a|b`` as its first choice."""
    line = line.replace("[", "").replace("]", "")
    return [token.split("|", 1)[0] if "|" in token else token for token in shlex.split(line)]


def manage_lines() -> list[list[str]]:
    """``manage.py`` command lines of the sh blocks, as argv after ``manage.py``."""
    found = []
    for line in sh_blocks(README):
        argv = printed_argv(line)
        if "manage.py" in argv:
            found.append(argv[argv.index("manage.py") + 1 :])
    return found


def test_the_readme_shows_commands() -> None:
    """The parser below actually finds the README's command blocks (a test that cannot fail is none)."""
    names = {argv[0] for argv in manage_lines()}
    assert {"verify_audit", "compare_reports", "seed_demo", "reinfer"} <= names


def test_every_manage_py_command_the_readme_names_exists() -> None:
    commands = get_commands()
    named = set(re.findall(r"manage\.py ([a-z_]+)", README))
    assert named, "README names no manage.py command"
    missing = sorted(name for name in named if name not in commands)
    assert not missing, f"README names commands that do not exist: {missing}"


@pytest.mark.parametrize("argv", manage_lines(), ids=lambda argv: " ".join(argv[:2]))
def test_each_printed_command_line_parses(argv: list[str]) -> None:
    """The options the README prints are the command's options (argparse is the command's own)."""
    name, args = argv[0], argv[1:]
    command = load_command_class(get_commands()[name], name)
    parser = command.create_parser("manage.py", name)
    parser.parse_args(args)  # raises CommandError on an unknown option or a missing argument


def test_every_make_target_the_readme_shows_exists() -> None:
    targets = set(re.findall(r"^([a-z][a-z-]*):", MAKEFILE, flags=re.M))
    shown = set(re.findall(r"make ([a-z][a-z-]*)", README))
    assert {"demo", "test"} <= shown
    assert shown <= targets, f"README shows make targets the Makefile lacks: {sorted(shown - targets)}"


@pytest.mark.django_db
def test_the_read_only_commands_run_for_real(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ai.txt").write_text("FINDINGS: Small left pleural effusion.\nIMPRESSION: Effusion.\n")
    (tmp_path / "signed.txt").write_text("FINDINGS: No pleural effusion.\nIMPRESSION: Normal chest.\n")
    (tmp_path / "pairs.jsonl").write_text(
        '{"id": "p1", "candidate": "No pneumothorax.", "reference": "Small right pneumothorax."}\n'
    )
    monkeypatch.chdir(tmp_path)
    ran = set()
    for argv in manage_lines():
        if argv[0] not in READ_ONLY:
            continue
        out = io.StringIO()
        call_command(*argv, stdout=out, stderr=io.StringIO())
        ran.add(argv[0])
    assert ran == READ_ONLY
    assert (tmp_path / "events.json").exists()


def test_the_engine_evaluation_runs_as_printed() -> None:
    lines = [printed_argv(line) for line in sh_blocks(README) if "inference.compare.evaluate" in line]
    assert lines, "README no longer shows the engine evaluation"
    argv = lines[0]
    result = subprocess.run(
        [sys.executable, *argv[argv.index("-m") :]], cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stderr[-2000:]


def _manage(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _newcomer_env() -> dict[str, str]:
    """The environment of someone copying a README line: none of the variables the Makefile sets."""
    drop = {"SECRET_KEY", "SECRET_KEY_FILE", "ALLOWED_HOSTS", "DJANGO_SETTINGS_MODULE"}
    return {key: value for key, value in os.environ.items() if key not in drop}


def test_a_local_installation_finds_its_own_secret_key(tmp_path: Path) -> None:
    assert (ROOT / "var" / "secret_key").exists(), "make test creates var/secret_key"
    result = _manage(["check"], _newcomer_env(), tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]


def test_a_deployment_refuses_to_start_without_an_explicit_secret(tmp_path: Path) -> None:
    env = _newcomer_env() | {"ALLOWED_HOSTS": "concordance.hospital.example"}
    result = _manage(["check"], env, tmp_path)
    assert result.returncode != 0
    assert "SECRET_KEY (or SECRET_KEY_FILE) must be set" in result.stderr
    explicit = env | {"SECRET_KEY": "x" * 60}
    assert _manage(["check"], explicit, tmp_path).returncode == 0
