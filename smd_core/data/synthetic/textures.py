"""Surface textures: float32 BGR images (0..255) that a layer samples through an affine map.

Natural textures dominate the default mix (TEXTURE_WEIGHTS): crops of the photographs bundled with
scikit-image, 1/f ("pink") noise, wood, woven cloth and multi-scale value noise; periodic stripes /
checkers and near-textureless gradients are a minority. Every texture is slightly blurred (a camera
integrates light over its pixels), so resampling it at sub-pixel positions stays faithful.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

TEXTURE_KINDS = ("image", "pink", "wood", "fabric", "noise", "stripes", "gradient")
# Relative frequency of each kind (renormalised over the kinds a caller allows).
TEXTURE_WEIGHTS = {"image": 3.0, "pink": 2.0, "wood": 1.2, "fabric": 1.0, "noise": 1.0, "stripes": 0.8, "gradient": 0.8}
# Images bundled with scikit-image (no download needed); used as texture crops.
_SKIMAGE_TEXTURES = ("astronaut", "brick", "camera", "coffee", "grass", "gravel", "rocket", "chelsea", "coins", "moon",
                     "page", "text", "clock", "hubble_deep_field", "immunohistochemistry", "cell")
_texture_cache: dict[str, np.ndarray] = {}
_TEXTURE_BLUR = 0.7  # Gaussian sigma (texture pixels) applied to every texture


def _skimage_texture(name: str) -> np.ndarray:
    """BGR float32 (H, W, 3) 0..255 version of a scikit-image bundled image (cached)."""
    if name not in _texture_cache:
        import skimage.data

        img = np.asarray(getattr(skimage.data, name)())
        if img.dtype != np.uint8:
            img = np.clip(img * (255.0 if img.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        elif img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_RGBA2BGR)
        else:
            img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
        # The same slight blur as procedural textures: sharp print and coin edges would only alias.
        _texture_cache[name] = cv2.GaussianBlur(img.astype(np.float32), (0, 0), _TEXTURE_BLUR)
    return _texture_cache[name]


def _skimage_grey(name: str) -> np.ndarray:
    """(H, W, 1) float32 0..1 luminance of `_skimage_texture(name)` (cached), for re-tinting."""
    key = name + ":grey"
    if key not in _texture_cache:
        grey = cv2.cvtColor(_skimage_texture(name).astype(np.uint8), cv2.COLOR_BGR2GRAY)
        _texture_cache[key] = grey.astype(np.float32)[..., None] / 255.0
    return _texture_cache[key]


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(20, 235, size=3).astype(np.float32)


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (y (h, 1), x (1, w)) float32, broadcasting to (h, w)."""
    return np.arange(h, dtype=np.float32)[:, None], np.arange(w, dtype=np.float32)[None, :]


def _noise_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Multi-scale value noise with a random spectrum slope, coloured between two random colours."""
    beta = rng.uniform(-0.1, 0.8)  # amplitude grows with the octave size by 2**(k * beta)
    field = np.zeros((h, w), np.float32)
    k, size = 0, 1
    while size <= max(h, w):
        gh, gw = max(h // size, 2), max(w // size, 2)
        grid = rng.standard_normal((gh, gw)).astype(np.float32)
        field += (2.0 ** (k * beta)) * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        k, size = k + 1, size * 2
    field = (field - field.mean()) / (field.std() + 1e-6)
    t = np.clip(0.5 + 0.25 * field, 0.0, 1.0)[..., None]
    c0, c1 = _random_colour(rng), _random_colour(rng)
    tex = c0 * (1.0 - t) + c1 * t
    # Fine grain keeps even smooth textures matchable.
    tex += np.float32(rng.uniform(2.0, 8.0)) * rng.standard_normal((h, w, 1), dtype=np.float32)
    return tex.astype(np.float32)


def _gradient_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A linear or radial colour gradient: weakly textured surfaces (walls, sky, painted objects)."""
    yy, xx = _grid(h, w)
    if rng.random() < 0.5:
        ang = rng.uniform(0, 2 * math.pi)
        t = (math.cos(ang) * xx + math.sin(ang) * yy) / max(h, w)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    else:
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        t = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) / math.hypot(h, w)
        t = t / max(float(t.max()), 1e-6)
    c0, c1 = _random_colour(rng), _random_colour(rng)
    tex = c0 * (1.0 - t[..., None]) + c1 * t[..., None]
    tex += np.float32(rng.uniform(0.5, 3.0)) * rng.standard_normal((h, w, 1), dtype=np.float32)
    return tex.astype(np.float32)


def _stripes_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Periodic stripes or checkers: repetitive patterns that make matching ambiguous."""
    yy, xx = _grid(h, w)
    period = rng.uniform(4.0, 24.0)
    ang = rng.uniform(0, math.pi)
    u = math.cos(ang) * xx + math.sin(ang) * yy
    if rng.random() < 0.5:
        t = 0.5 + 0.5 * np.sin(2 * math.pi * u / period)
    else:
        v = -math.sin(ang) * xx + math.cos(ang) * yy
        t = ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)
        t = cv2.GaussianBlur(t, (0, 0), 0.7)
    c0, c1 = _random_colour(rng), _random_colour(rng)
    tex = c0 * (1.0 - t[..., None]) + c1 * t[..., None]
    tex += np.float32(2.0) * rng.standard_normal((h, w, 1), dtype=np.float32)
    return tex.astype(np.float32)


def _pink_field(rng: np.random.Generator, h: int, w: int, alpha: float) -> np.ndarray:
    """(h, w) float32 zero-mean, unit-std noise with amplitude spectrum 1 / f**alpha (alpha 1: natural images)."""
    import scipy.fft

    # Synthesised on an FFT-friendly size and cropped (a prime side makes the transform several times slower).
    fh, fw = scipy.fft.next_fast_len(h, real=True), scipy.fft.next_fast_len(w, real=True)
    spec = scipy.fft.rfft2(rng.standard_normal((fh, fw), dtype=np.float32))
    fy = np.fft.fftfreq(fh).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(fw).astype(np.float32)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0 / max(fh, fw)
    spec *= f ** np.float32(-alpha)
    field = scipy.fft.irfft2(spec, s=(fh, fw))[:h, :w]
    return (field - field.mean()) / (field.std() + 1e-6)


def _lerp(c0: np.ndarray, c1: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Colour c0 where t = 0 and c1 where t = 1: (h, w) weights -> (h, w, 3)."""
    return c0 + t[..., None] * (c1 - c0)


def _pink_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """1/f noise (the spectrum of natural images) in luminance, with a slower second field varying the hue."""
    lum = _pink_field(rng, h, w, rng.uniform(0.8, 1.4))
    hue = _pink_field(rng, h, w, rng.uniform(1.3, 2.0))
    t = np.clip(0.5 + rng.uniform(0.15, 0.3) * lum, 0.0, 1.0)
    tex = _lerp(_random_colour(rng), _random_colour(rng), t)
    tex = _lerp(tex, _random_colour(rng), np.clip(0.25 * hue + 0.2, 0.0, 0.5))
    tex += np.float32(rng.uniform(1.0, 4.0)) * rng.standard_normal((h, w, 1), dtype=np.float32)
    return tex.astype(np.float32)


def _wood_colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(early wood, late wood) BGR: warm browns mostly, sometimes stained in any colour."""
    if rng.random() < 0.25:
        light = _random_colour(rng)
    else:
        hsv = np.array([[[rng.uniform(6, 22), rng.uniform(80, 200), rng.uniform(120, 240)]]], np.float32)
        light = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR).reshape(3).astype(np.float32)
    return light, light * np.float32(rng.uniform(0.4, 0.75))


def _wood_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Growth rings (distance to a far-off pith, warped by smooth noise) plus fine grain streaks along them."""
    yy, xx = _grid(h, w)
    ang = rng.uniform(0, math.pi) if rng.random() < 0.3 else rng.uniform(-0.3, 0.3)
    c, s = np.float32(math.cos(ang)), np.float32(math.sin(ang))
    u, v = c * xx + s * yy, -s * xx + c * yy  # u along the grain
    v0 = rng.uniform(-3.0, 3.0) * max(h, w)
    r = np.sqrt((v - v0) ** 2 + (np.float32(rng.uniform(0.02, 0.25)) * u) ** 2)
    period = rng.uniform(5.0, 30.0)
    r += np.float32(rng.uniform(0.3, 1.5) * period) * _pink_field(rng, h, w, 1.8)
    ring = (r / np.float32(period)) % 1.0
    t = ring ** np.float32(rng.uniform(1.5, 4.0))
    # Grain: noise stretched along u (sampled at u / stretch), i.e. thin streaks parallel to the rings.
    small = _pink_field(rng, max(h, w) // 4 + 8, max(h, w) + 8, 0.6)
    gu = (u / np.float32(rng.uniform(12.0, 40.0))) % np.float32(small.shape[1] - 1)
    gv = (v % np.float32(small.shape[0] * 4 - 8)) / np.float32(4.0)
    grain = cv2.remap(small, gu, gv, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    t = np.clip(t + np.float32(rng.uniform(0.05, 0.2)) * grain, 0.0, 1.0)
    light, dark = _wood_colours(rng)
    tex = _lerp(light, dark, t)
    tex += np.float32(rng.uniform(1.0, 3.0)) * rng.standard_normal((h, w, 1), dtype=np.float32)
    return tex.astype(np.float32)


def _fabric_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Woven cloth: warp and weft threads in a plain or twill weave, per-thread tone and smooth folds."""
    yy, xx = _grid(h, w)
    ang = rng.uniform(0, math.pi)
    c, s = np.float32(math.cos(ang)), np.float32(math.sin(ang))
    p = np.float32(rng.uniform(4.0, 12.0))
    u, v = (c * xx + s * yy) / p, (-s * xx + c * yy) / p
    iu, iv = np.floor(u).astype(np.int32), np.floor(v).astype(np.int32)
    n = int(rng.choice([2, 3, 4]))  # 2: plain weave; 3, 4: twill
    warp_up = ((iu + iv) % n) < (1 if n == 2 else n // 2)
    # Thread profile across the thread: bright in the middle, dark at its edges.
    prof = np.where(warp_up, np.sin(np.float32(math.pi) * (u - iu)), np.sin(np.float32(math.pi) * (v - iv)))
    tone_u, tone_v = (np.float32(rng.uniform(0.02, 0.12)) * rng.standard_normal(97).astype(np.float32)
                      for _ in range(2))
    tone = np.where(warp_up, tone_u[iu % 97], tone_v[iv % 97])
    shade = 0.55 + 0.45 * prof + tone + np.float32(rng.uniform(0.05, 0.15)) * _pink_field(rng, h, w, 1.6)
    c_warp = _random_colour(rng)
    c_weft = c_warp if rng.random() < 0.5 else _random_colour(rng)
    tex = np.where(warp_up[..., None], c_warp, c_weft) * np.clip(shade, 0.2, 1.3)[..., None]
    tex += np.float32(rng.uniform(1.0, 4.0)) * rng.standard_normal((h, w, 1), dtype=np.float32)
    return tex.astype(np.float32)


def make_texture(rng: np.random.Generator, kind: str, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(texture (th, tw, 3) float32, affine (2, 3) from layer-local pixels (origin = top-left of the region)
    to texture pixels). Procedural makers get sides of at least 2 px."""
    if kind == "image":
        name = _SKIMAGE_TEXTURES[int(rng.integers(len(_SKIMAGE_TEXTURES)))]
        tex = _skimage_texture(name)
        if tex.shape[2] == 3 and rng.random() < 0.5:
            # Re-tint, so the same photo does not always carry the same colours.
            grey = _skimage_grey(name)
            tex = _random_colour(rng) * (1.0 - grey) + _random_colour(rng) * grey
        th, tw = tex.shape[:2]
        scale = rng.uniform(0.5, 1.6)
        ang = rng.uniform(-0.4, 0.4)
        c, s = math.cos(ang) / scale, math.sin(ang) / scale
        # Start somewhere inside the photo; BORDER_REFLECT covers regions larger than it.
        tx, ty = rng.uniform(0, tw * 0.5), rng.uniform(0, th * 0.5)
        return tex, np.array([[c, -s, tx], [s, c, ty]], np.float32)
    # Procedural textures are generated at the region's size (capped; the affine stretches them).
    cap = 768
    f = max(1.0, max(h, w) / cap)
    gh, gw = max(int(h / f), 2), max(int(w / f), 2)
    maker = {"noise": _noise_texture, "gradient": _gradient_texture, "stripes": _stripes_texture,
             "pink": _pink_texture, "wood": _wood_texture, "fabric": _fabric_texture}
    if kind not in maker:
        raise ValueError(f"unknown texture kind {kind!r}; expected one of {TEXTURE_KINDS}")
    # A camera integrates light over its pixels: texture detail finer than about a pixel would only alias
    # (and make the two views differ by more than the resampling of a real lens image does).
    tex = cv2.GaussianBlur(maker[kind](rng, gh, gw), (0, 0), _TEXTURE_BLUR)
    return tex, np.array([[1.0 / f, 0.0, 0.0], [0.0, 1.0 / f, 0.0]], np.float32)
