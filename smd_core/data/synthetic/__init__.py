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

Entry points: `render.render_scene`, `render.render_sequence` (objects move smoothly),
`dataset.SyntheticDataset` (on the fly, deterministic per index), `dataset.write_dataset` (PNG + NPY + list
file) and `cli` (`smd synth --out DIR --num N`).
"""
