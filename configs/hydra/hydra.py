r"""Hydra heads: 4 sequentially dependent heads (head k also reads the drafted tokens' embeddings).

On the frozen zoo model attn2l_code (see configs/hydra/_base.py and experiments/hydra/task.py).

    mechjax run configs/hydra/hydra.py --workdir runs/hydra/hydra
    mechjax run configs/hydra/hydra.py:runlocal --workdir /tmp/hydra_hydra
"""

import os

from mechjax.train import load_config_file


def get_config(arg=None):
    base = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_base.py")
    return load_config_file(f"{base}:{arg or ''},variant=hydra")
