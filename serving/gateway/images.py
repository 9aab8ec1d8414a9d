"""ClassifyFashion's images: raw 28x28 pixels, or a PNG/JPEG decoded to grayscale and resized to 28x28.
Every problem is an INVALID_ARGUMENT naming the image."""

from __future__ import annotations

import io

import numpy as np

from ..status import ServingError, invalid

SIDE = 28
MAX_PIXELS = 40_000_000  # a decoded image larger than this is refused before it is converted


def needs_decoding(images) -> bool:
    """Whether any image is encoded (decoding is slow enough to run off the event loop)."""
    return any(img.WhichOneof("data") == "encoded" for img in images)


def decode_images(images) -> np.ndarray:
    """The images as uint8 [N, 28, 28]."""
    out = np.empty((len(images), SIDE, SIDE), dtype=np.uint8)
    for i, img in enumerate(images):
        which = img.WhichOneof("data")
        if which == "pixels":
            if len(img.pixels) != SIDE * SIDE:
                raise invalid(f"images[{i}].pixels: must be 784 bytes (28x28), got {len(img.pixels)}")
            out[i] = np.frombuffer(img.pixels, dtype=np.uint8).reshape(SIDE, SIDE)
        elif which == "encoded":
            out[i] = _decode_one(img.encoded, i)
        else:
            raise invalid(f"images[{i}]: set pixels or encoded")
    return out


def _decode_one(data: bytes, i: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    field = f"images[{i}].encoded"
    if not (data.startswith(b"\x89PNG\r\n\x1a\n") or data.startswith(b"\xff\xd8\xff")):
        raise invalid(f"{field}: not a PNG or JPEG image")
    try:
        with Image.open(io.BytesIO(data), formats=["PNG", "JPEG"]) as im:
            if im.width * im.height > MAX_PIXELS:
                raise invalid(f"{field}: image of {im.width}x{im.height} pixels is too large")
            im = im.convert("L")
            if im.size != (SIDE, SIDE):
                im = im.resize((SIDE, SIDE), Image.Resampling.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except ServingError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise invalid(f"{field}: cannot decode image ({exc.__class__.__name__})") from None
