r"""Hydra++ heads: a decoder layer over the base hidden states, 4 Hydra heads x 4 layers, teacher distillation.

On the frozen zoo model attn2l_code (see configs/hydra/_base.py and experiments/hydra/task.py).

    mechjax run configs/hydra/hydra_pp.py --workdir runs/hydra/hydra_pp
    mechjax run configs/hydra/hydra_pp.py:runlocal --workdir /tmp/hydra_hydra_pp
"""

import os

from mechjax.train import load_config_file


def get_config(arg=None):
    base = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_base.py")
    return load_config_file(f"{base}:{arg or ''},variant=hydra++")
