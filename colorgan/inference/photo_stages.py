"""Colorizing photos in three stages, so that photos of different sizes share one generator call.

  canvas     per photo: its gray fitted into the render-size square (and a person's points painted on it)
  chroma     per batch: the generator's a*, b* for stacked canvases (the model's own stage, `loading.Colorizer`)
  recombine  per photo: that chroma upsampled and joined with the photo's full-resolution L*

The stages before and after the model need no weights: a Beam worker runs them in its own DoFns, and every runner
calls these same compiled functions, which is why the local and Beam runs write the same bytes.
"""

import numpy as np
import tensorflow as tf

from colorgan.inference import rendering

_PHOTOS = tf.TensorSpec([None, None, None, 1], tf.float32)
_POINTS = (tf.TensorSpec([None, None, 2], tf.float32), tf.TensorSpec([None, None, 3], tf.float32),
           tf.TensorSpec([None, None], tf.float32))
OUTPUT_DTYPES = (tf.float32, tf.uint8, tf.uint16)


class PhotoStages:
    """The stages around the model at one render size, compiled once (one function per output dtype)."""

    def __init__(self, render_size):
        self.render_size = size = render_size
        # autograph=False: no Python control flow to convert, and autograph leaves a file in $TMPDIR per function.
        self._canvas = tf.function(lambda gray: rendering.fit_canvas(gray, size)[0], input_signature=[_PHOTOS],
                                   autograph=False)
        self._canvas_with_hints = tf.function(
            lambda gray, xy, rgb, mask: rendering.fit_canvas_with_hints(gray, (xy, rgb, mask), size),
            input_signature=[_PHOTOS, *_POINTS], autograph=False)
        chroma = tf.TensorSpec([None, size, size, 2], tf.float32)
        self._recombine = {dtype: tf.function(
            lambda gray, ab, dtype=dtype: rendering.recombine(gray, ab, size, dtype),
            input_signature=[_PHOTOS, chroma], autograph=False) for dtype in OUTPUT_DTYPES}

    def canvas(self, gray, hints=None):
        """gray float32 [n, h, w, 1] in [0, 1] (and hints: (xy [n, k, 2], rgb [n, k, 3], mask [n, k]), as
        `rendering.canvas_hints` reads them) -> (canvas [n, R, R, 1], canvas hints [n, R, R, 3] or None), numpy."""
        if hints is None:
            return self._canvas(tf.constant(gray)).numpy(), None
        canvas, canvas_hints = self._canvas_with_hints(tf.constant(gray), *(np.asarray(v, np.float32) for v in hints))
        return canvas.numpy(), canvas_hints.numpy()

    def recombine(self, gray, ab, dtype=np.float32):
        """gray [n, h, w, 1] + its chroma [n, R, R, 2] -> sRGB [n, h, w, 3] numpy: float32 in [0, 1], or uint8 /
        uint16 over their full range."""
        return self._recombine[tf.as_dtype(dtype)](tf.constant(gray), tf.constant(ab)).numpy()

