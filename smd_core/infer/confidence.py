"""The mixture head's uncertainty floor and the factors of the deployment defaults built on it: plain
arithmetic, no torch (the onnxruntime runtime uses them as the PyTorch one does; `smd_core.model.mixture`
re-exports them)."""

from __future__ import annotations

import math

SIGMA_EPS = 1e-2  # the reference clamps Laplacian scales to [1e-2, 1] (1e-3 is its Gaussian value)
# px of uncertainty per px a disparity lies off the surfaces around it: the "edge" uncertainty's weight of its
# surface gap (`mixture.uncertainty`) and of a refilled speckle's change (`dense.fill_speckles`). Chosen on the
# held-out synthetic set (flying and bad-2 at equal density).
EDGE_GAP_WEIGHT = 2.0


def uncertainty_floor(max_disp: float) -> float:
    """The smallest "sigma" / "peak" uncertainty a mixture head can give, in px of max_disp: sqrt(2) * SIGMA_EPS
    * max_disp (1.81 px at max_disp 128). Well-trained heads sit at it wherever they are sure."""
    return math.sqrt(2.0) * SIGMA_EPS * float(max_disp)


# Deployment defaults (`network.deployment_for`): the node's cloud threshold is this times the floor for a file
# without its own; a shipped model stores its own, calibrated to keep SGBM's density on the held-out synthetic
# set (`smd_core.eval.calibrate`; the model card's "node's cloud" rows); pseudo-labels keep a mode at the floor
# only with pi >= 1 / PSEUDO_FLOOR_FACTOR, where the model has all but settled which surface it sees.
CLOUD_FLOOR_FACTOR = 2.25
PSEUDO_FLOOR_FACTOR = 1.1
