"""Procedural stereo pairs with exact disparity for both views: `smd synth`.

A scene (`scene`) is a stack of planar layers in the LEFT camera's pixel frame, each a shape (`shapes`, many
of them see-through or thin: where matchers produce flying pixels) on a disparity plane, with a texture
(`textures`) and a shading ramp. `render` renders both views by forward geometry, so both disparity maps and
the occlusion mask are exact. `dataset`: scenes as a dataset or files; `cli`: `smd synth --out DIR --num N`.
"""
