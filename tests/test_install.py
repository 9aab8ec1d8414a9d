"""Installs that are not a checkout: a wheel built from this tree, installed into fresh venvs.

- Core install (no extras, real `pip install -c requirements/lock.txt`): the client commands work, and
  every server-side command says in one line which extra it needs (exit 2) instead of a traceback.
- Wheel + the extras' packages borrowed from this venv (a .pth line; the checkout's editable install
  stays invisible): `tfgate demo` runs from an unrelated folder on the sample data the wheel ships.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from tests.conftest import REPO

# What the build reads; copied so the build never writes build/ or *.egg-info into the shared tree.
SOURCES = ("pyproject.toml", "README.md", "clients", "pipeline", "serving", "protos/tfgate", "data")
LOCK = REPO / "requirements" / "lock.txt"
PACKAGE_ROOTS = {"tfgate/clients": "clients", "tfgate/pipeline": "pipeline", "tfgate/serving": "serving",
                 "tfgate": "protos/tfgate"}
SERVER_COMMANDS = {
    "pipeline": (["housing", "--input", "in.csv", "--output", "out"], "pipeline"),
    "train": (["housing", "--data", "in", "--model-base-path", "models"], "pipeline"),
    "model-server": (["--port=8500", "--model_name=m", "--model_base_path=/nonexistent"], "serving"),
    "gateway": (["--config", "gateway.yaml"], "serving"),
    "demo": (["--workdir", "work", "--epochs", "1"], "pipeline,serving"),
}


def _run(cmd: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """A subprocess that sees nothing of the checkout: no PYTHONPATH, run from `cwd`."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("TFGATE_")}
    env.update(COLUMNS="200", NO_COLOR="1", TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _check(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, f"{done.args}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


def _venv(path: Path) -> Path:
    """A fresh venv without pip of its own (this venv's pip installs into it with --python)."""
    _check(_run([sys.executable, "-m", "venv", "--without-pip", str(path)], cwd=path.parent))
    return path / "bin" / "python"


def _pip_install(python: Path, *args: str) -> None:
    _check(_run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", *args],
                cwd=python.parent, timeout=600))


def _site_packages(python: Path) -> Path:
    out = _check(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                      cwd=python.parent))
    return Path(out.stdout.strip())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("wheel-src")
    for name in SOURCES:
        source, target = REPO / name, src / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, target)
    dist = tmp_path_factory.mktemp("dist")
    # No build isolation: this venv's setuptools builds it, offline.
    _check(_run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist),
                 str(src)], cwd=src, timeout=300))
    (built,) = dist.glob("tfgate-*.whl")
    return built


@pytest.fixture(scope="module")
def core_venv(wheel, tmp_path_factory) -> Path:
    """The wheel with its core dependencies only, at the locked versions."""
    python = _venv(tmp_path_factory.mktemp("core") / "venv")
    _pip_install(python, "-c", str(LOCK), str(wheel))
    return python


def test_wheel_holds_every_package_and_the_sample_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    # pyproject.toml lists its packages by hand: a package added to the tree must be added there too.
    for package, root in PACKAGE_ROOTS.items():
        for init in (REPO / root).rglob("__init__.py"):
            if "__pycache__" not in init.parts and "node_modules" not in init.parts:
                inside = init.relative_to(REPO / root).as_posix()
                assert f"{package}/{inside}" in names, f"{init.relative_to(REPO)} is not in the wheel"
    with zipfile.ZipFile(wheel) as archive:
        files = [p for p in (REPO / "data").rglob("*") if p.is_file()]
        assert len(files) >= 7  # csv + its note, four IDX files, the README
        for path in files:
            member = "tfgate/data/" + path.relative_to(REPO / "data").as_posix()
            assert archive.read(member) == path.read_bytes(), member
        top_level = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
        assert archive.read(top_level).decode().split() == ["tfgate"]


def test_extra_modules_match_pyproject_extras():
    from tfgate.clients.cli.extras import EXTRA_MODULES

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    provides: dict[str, set[str]] = {}
    for module, dists in packages_distributions().items():
        for dist in dists:
            provides.setdefault(re.sub(r"[-_.]+", "-", dist).lower(), set()).add(module)
    for extra, modules in EXTRA_MODULES.items():
        dists = {re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9._-]+", req).group()).lower() for req in extras[extra]}
        for dist in dists:
            assert provides[dist] & set(modules), f"[{extra}] {dist}: none of {sorted(provides[dist])} is checked"
        for module in modules:
            assert any(module in provides[d] for d in dists), f"{module} is not from the [{extra}] extra"


def test_core_install_has_no_tensorflow_and_ships_the_sample_data(core_venv):
    code = ("import importlib.util as u, tfgate.clients as clients; from tfgate.clients.cli.demo import bundled, "
            "HOUSING_CSV;"
            "print([m for m in ('tensorflow', 'apache_beam', 'yaml') if u.find_spec(m)]);"
            "print(clients.__file__); print(bundled(HOUSING_CSV))")
    out = _check(_run([str(core_venv), "-c", code], cwd=core_venv.parent)).stdout.splitlines()
    site = _site_packages(core_venv)
    assert out[0] == "[]"
    assert out[1] == str(site / "tfgate" / "clients" / "__init__.py")
    assert out[2] == str(site / "tfgate" / "data" / "housing" / "housing.csv")


@pytest.mark.parametrize("command", sorted(SERVER_COMMANDS))
def test_server_command_without_its_extra_names_it_in_one_line(core_venv, command, tmp_path):
    args, extra = SERVER_COMMANDS[command]
    done = _run([str(core_venv.with_name("tfgate")), command, *args], cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: tfgate {command} needs the ")
    assert lines[0].endswith(f"pip install 'tfgate[{extra}]'"), lines[0]
    assert done.stdout == "" and not list(tmp_path.iterdir())  # refused before doing anything


def test_client_commands_and_help_work_on_a_core_install(core_venv, tmp_path):
    tfgate = str(core_venv.with_name("tfgate"))
    root = _check(_run([tfgate, "--help"], cwd=tmp_path)).stdout
    for command in ("predict", "classify", "models", *SERVER_COMMANDS):
        assert command in root
    assert "--target" in _check(_run([tfgate, "models", "--help"], cwd=tmp_path)).stdout
    assert "--csv" in _check(_run([tfgate, "predict", "housing", "--help"], cwd=tmp_path)).stdout
    # Help of a server-side command needs no extra either.
    assert "--download" in _check(_run([tfgate, "pipeline", "--help"], cwd=tmp_path)).stdout
    assert "--model_config_file" in _check(_run([tfgate, "model-server", "--help"], cwd=tmp_path)).stdout
    # A real call: nothing listens on this port, so the client reports UNAVAILABLE (exit 1), no traceback.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = _run([tfgate, "models", "--target", f"127.0.0.1:{port}", "--timeout", "2"], cwd=tmp_path)
    assert done.returncode == 1 and "UNAVAILABLE" in done.stderr and "Traceback" not in done.stderr, done.stderr


@pytest.mark.slow
def test_demo_runs_from_the_wheel_on_its_packaged_data(wheel, tmp_path_factory):
    # The wheel alone, plus this venv's site-packages for TensorFlow & co. A path added by a .pth file is
    # not a site folder, so its own .pth files (the editable install of this checkout) are not run.
    python = _venv(tmp_path_factory.mktemp("demo") / "venv")
    _pip_install(python, "--no-deps", str(wheel))
    site = _site_packages(python)
    (site / "zz_borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    code = ("import tfgate, tfgate.clients, tfgate.pipeline, tfgate.serving, tensorflow\n"
            "for m in (tfgate.clients, tfgate.pipeline, tfgate.serving, tfgate): print(m.__file__)")
    where = _check(_run([str(python), "-c", code], cwd=site))
    for line in where.stdout.splitlines():
        assert line.startswith(str(site) + os.sep), f"not the wheel's copy: {line}"

    outside = tmp_path_factory.mktemp("elsewhere")
    done = _run([str(python.with_name("tfgate")), "demo", "--workdir", "work", "--epochs", "1",
                 "--fashion-model", "mlp"], cwd=outside, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "demo finished" in done.stdout
    commands = (outside / "work" / "report" / "index.html").read_text()
    assert f"--input {site / 'tfgate' / 'data' / 'housing' / 'housing.csv'} " in commands
    assert f"--input {site / 'tfgate' / 'data' / 'fashion-mnist'} " in commands
    assert (outside / "work" / "models" / "fashion" / "1" / "saved_model.pb").exists()
