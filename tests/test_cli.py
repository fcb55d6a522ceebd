"""The `icm` command: every listed command module exists and registers its commands."""

import importlib.util
import subprocess
import sys

from icm_lib.cli import COMMAND_MODULES, build_parser


def test_every_command_module_exists():
    missing = [name for name in COMMAND_MODULES if importlib.util.find_spec(name) is None]
    assert not missing, f"listed in icm_lib.cli.COMMAND_MODULES but missing: {missing}"


def test_commands_registered():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for command in ("data", "masks", "models", "encode", "decode", "train", "code", "evaluate", "bench", "pipeline"):
        assert command in sub.choices, f"icm {command} is not registered"


def test_help_runs_as_a_console_script():
    out = subprocess.run([sys.executable, "-m", "icm_lib.cli", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "pipeline" in out.stdout
