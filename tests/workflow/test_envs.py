"""The conda envs in envs/ (`--sdm conda`, on clusters) carry the venv's pins: every version an
env names equals the one in requirements.txt / constraints.txt, and every pinned package an env
gets, directly or as a dependency of what it lists (read from the venv's own package metadata),
is pinned there, so a cluster run computes with the versions the tests ran with."""

import re
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
ENVS = sorted((REPO / "envs").glob("*.yaml"))
CONDA_TOOLING = {"python", "pip", "compilers"}  # conda's own, not Python packages of the venv


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def venv_pins() -> dict[str, str]:
    """name -> version ('' when unpinned) from requirements.txt and constraints.txt."""
    pins = {}
    for name in ("requirements.txt", "constraints.txt"):
        for line in (REPO / name).read_text().splitlines():
            line = line.split("#")[0].strip()
            if line and not line.startswith("-"):
                req = Requirement(line)
                pins[norm(req.name)] = next((s.version for s in req.specifier if s.operator == "=="), "")
    return pins


def env_packages(path: Path) -> dict[str, str]:
    """name -> version ('' when unpinned) of an env file's conda and pip entries."""
    packages = {}
    for entry in yaml.safe_load(path.read_text())["dependencies"]:
        for item in entry["pip"] if isinstance(entry, dict) else [entry]:
            if item.startswith("-"):  # a pip option (--no-binary scib)
                continue
            name, _, version = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(==|=)?\s*(\S*)", item.strip()).groups()
            packages[norm(name)] = version
    return packages


def dependencies(name: str, seen: set[str]) -> set[str]:
    """name and everything it requires, transitively, as installed in this venv."""
    if name in seen:
        return seen
    seen.add(name)
    try:
        requires = metadata.distribution(name).requires or []
    except metadata.PackageNotFoundError:
        return seen
    for line in requires:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            dependencies(norm(req.name), seen)
    return seen


def test_there_are_envs():
    assert {p.name for p in ENVS} >= {"data.yaml", "integrate.yaml", "score.yaml", "report.yaml"}


@pytest.mark.parametrize("env", ENVS, ids=lambda p: p.name)
def test_env_versions_are_the_venv_pins(env):
    pins = venv_pins()
    for name, version in env_packages(env).items():
        if name in CONDA_TOOLING:
            continue
        assert name in pins, f"{env.name}: {name} is not in requirements.txt or constraints.txt"
        assert version == pins[name], f"{env.name}: {name} {version or 'unpinned'}, venv pin {pins[name] or 'unpinned'}"


@pytest.mark.parametrize("env", ENVS, ids=lambda p: p.name)
def test_env_pins_what_its_packages_pull_in(env):
    """scanpy pulls statsmodels, umap-learn, matplotlib...: unpinned there, conda would pick
    whatever version is newest the day the env is built."""
    pins, listed = venv_pins(), env_packages(env)
    pulled = set()
    for name in listed:
        dependencies(name, pulled)
    missing = sorted(f"{n}=={pins[n]}" for n in pulled if pins.get(n) and n not in listed)
    assert not missing, f"{env.name} installs these unpinned; pin them as the venv does: {missing}"


def test_venv_has_its_pins():
    """The venv the tests run in is what requirements.txt and constraints.txt say."""
    wrong = []
    for name, version in venv_pins().items():
        try:
            installed = metadata.version(name).split("+")[0]  # torch 2.13.0+cpu is torch 2.13.0
        except metadata.PackageNotFoundError:
            wrong.append(f"{name} not installed")
            continue
        if version and installed != version:
            wrong.append(f"{name} {installed}, pinned {version}")
    assert not wrong, f"re-run make (the venv is stale): {wrong}"
