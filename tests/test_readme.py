"""Every Python example in README.md runs as written, and the README keeps
what it promises: the original SDK snippet verbatim, the two fresh-machine
commands, imports from the public face, and links that lead somewhere."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_sdk_surface import SEED_SNIPPET

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TEXT = README.read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, flags=re.S)
SHELL = re.findall(r"```bash\n(.*?)```", TEXT, flags=re.S)

FRESH_MACHINE = [
    "python3 -m venv .venv && .venv/bin/pip install -q -e . && .venv/bin/python -m pylane.demo",
    "bash tests/run_all.sh",
]


def test_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("number", range(len(BLOCKS)))
def test_readme_example_runs(number: int) -> None:
    code = BLOCKS[number]
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"example {number} failed:\n{code}\n{done.stderr}"


def test_the_original_sdk_snippet_is_kept_verbatim() -> None:
    assert SEED_SNIPPET in BLOCKS


def test_the_fresh_machine_commands_are_there_as_blocks_of_their_own() -> None:
    blocks = [block.strip() for block in SHELL]
    for command in FRESH_MACHINE:
        assert command in blocks, f"README lost the command: {command}"
    assert (ROOT / "pylane" / "demo.py").is_file()
    assert (ROOT / "tests" / "run_all.sh").is_file()


def test_examples_import_from_the_public_face() -> None:
    for code in BLOCKS:
        for module in re.findall(r"^\s*(?:from|import) (pylane\.\S+|a3s_lane\.\S+)", code, re.M):
            pytest.fail(f"an example imports {module}; teach `from pylane import ...`")


@pytest.mark.parametrize("readme", ["README.md", "bench/README.md", "tests/README.md"])
def test_relative_links_lead_to_files(readme: str) -> None:
    path = ROOT / readme
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if "://" in target:
            continue
        assert (path.parent / target).exists(), f"{readme} links to a missing {target}"


def test_the_errors_table_names_every_lane_error() -> None:
    import pylane

    table = TEXT[TEXT.index("## Errors"):]
    table = table[:table.index("\n## ")]
    errors = [name for name in pylane.__all__
              if isinstance(getattr(pylane, name), type)
              and issubclass(getattr(pylane, name), pylane.LaneError)
              and name != "LaneError"]
    assert len(errors) >= 10
    missing = [name for name in errors if f"| `{name}` |" not in table]
    assert not missing, f"README's errors table lacks {missing}"


def test_the_events_table_names_every_event_key() -> None:
    keys = set()
    for path in (ROOT / "pylane").rglob("*.py"):
        keys.update(re.findall(r'"(queue\.[a-z_]+\.[a-z_]+)"', path.read_text()))
    assert len(keys) >= 14
    missing = sorted(key for key in keys if f"| `{key}` |" not in TEXT)
    assert not missing, f"README's events table lacks {missing}"
