"""environment.yml (conda) and pyproject.toml (pip) pin the same packages."""

import tomllib

import yaml

from conftest import REPO


def _pyproject_pins() -> set[str]:
    with open(REPO / "pyproject.toml", "rb") as f:
        return set(tomllib.load(f)["project"]["dependencies"])


def _conda_pins() -> set[str]:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert "python=3.11" in env["dependencies"]
    return {p for p in pip if not p.startswith("-e")}


def test_environment_yml_agrees_with_pyproject():
    pyproject, conda = _pyproject_pins(), _conda_pins()
    assert pyproject == conda, f"only in pyproject: {pyproject - conda}; only in environment.yml: {conda - pyproject}"


def test_every_dependency_is_pinned_exactly():
    for pin in _pyproject_pins():
        assert "==" in pin, f"{pin} is not pinned to one version"
