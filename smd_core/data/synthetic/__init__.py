"""Procedural stereo pairs with exact disparity for both views: `smd synth`.

A scene is a stack of layers in the LEFT camera's pixel frame. Each layer has

- a shape (`shapes`: ellipse, box, star polygon; see-through ring, spoked wheel, fence / grid / window
  frame, perforated plate; thin pole, sagging wire; the background has none and covers everything),
  given by a signed distance function in left-image pixels. The see-through and thin shapes are where
  matchers produce flying pixels, so scenes contain plenty of them;
- a disparity plane d(x, y) = a x + b y + c (left-image pixels; slanted or fronto-parallel);
- an appearance (`textures`): a texture image addressed through an affine map of the left coordinates,
  times a smooth shading ramp. Natural textures dominate (crops of the photographs bundled with
  scikit-image, 1/f noise, wood, woven cloth, multi-scale noise); periodic stripes / checkers and
  near-textureless gradients are a minority (TEXTURE_WEIGHTS).

`scene` draws the layers from one seeded generator; `render` renders both views by forward geometry, so
both disparity maps and the occlusion mask are exact (with `photometric=False`, the right image
resampled at x - disp_left matches the left image on non-occluded pixels, which the tests check).

Entry points: `render_scene`, `render_sequence` (objects move smoothly), `SyntheticDataset`
(on the fly, deterministic per index), `write_dataset` (PNG + NPY + list file) and the CLI
`smd synth --out DIR --num N` (`add_arguments`, `run`).
"""

from typing import Any

from smd_core.data.synthetic.cli import add_arguments, run
from smd_core.data.synthetic.render import SyntheticFrame, render_scene, render_sequence
from smd_core.data.synthetic.shapes import SHAPE_KINDS, SHAPE_WEIGHTS, THIN_WEIGHTS
from smd_core.data.synthetic.textures import TEXTURE_KINDS, TEXTURE_WEIGHTS

__all__ = [
    "SyntheticFrame",
    "SyntheticDataset",
    "render_scene",
    "render_sequence",
    "write_dataset",
    "add_arguments",
    "run",
    "TEXTURE_KINDS",
    "TEXTURE_WEIGHTS",
    "SHAPE_KINDS",
    "SHAPE_WEIGHTS",
    "THIN_WEIGHTS",
]


def __getattr__(name: str) -> Any:
    # The dataset module imports torch; `smd synth --help` imports this package and must not.
    if name in ("SyntheticDataset", "write_dataset"):
        from smd_core.data.synthetic import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
