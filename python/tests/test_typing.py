"""The types users see are checked: the usage file passes `mypy --strict` (in run.sh) and runs
here; misuse is caught by mypy (here, when mypy is installed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

MISUSE = """
from agent_mem import Memory
m = Memory(embedder="none")
m.search("x", mode="semantic")
m.add("x", usr_id="u")
n: str = m.count()
m.add(["a"], vector=[1.0])
"""


def test_the_usage_file_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # mem0_async opens a store in the default dir
    monkeypatch.setenv("AGENTMEM_MEM0_DIR", str(tmp_path))
    import typing_usage

    typing_usage.main()


def test_mypy_catches_misuse(tmp_path: Path) -> None:
    pytest.importorskip("mypy")
    bad = tmp_path / "misuse.py"
    bad.write_text(MISUSE, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(bad)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    out = done.stdout
    assert done.returncode == 1, out
    assert 'misuse.py:4: error: Argument "mode"' in out, out
    assert 'misuse.py:5: error: No overload variant of "add"' in out, out
    assert "misuse.py:6: error: Incompatible types in assignment" in out, out
    assert 'misuse.py:7: error: No overload variant of "add"' in out, out
