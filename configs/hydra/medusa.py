r"""Medusa heads: 4 independent heads, one residual SiLU block each on the base's last hidden state.

On the frozen zoo model attn2l_code (see configs/hydra/_base.py and experiments/hydra/task.py).

    mechjax run configs/hydra/medusa.py --workdir runs/hydra/medusa
    mechjax run configs/hydra/medusa.py:runlocal --workdir /tmp/hydra_medusa
"""

import os

from mechjax.train import load_config_file


def get_config(arg=None):
    base = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_base.py")
    return load_config_file(f"{base}:{arg or ''},variant=medusa")
