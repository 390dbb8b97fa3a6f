"""Batching for the service: one call of the export's chroma signature for the photos of requests that arrive
together."""

import concurrent.futures
import queue
import threading
import time

import tensorflow as tf

_STOP = object()


class Batcher:
    """Runs the chroma signature once for the photos of requests that arrive together.

    A thread takes the first waiting group of canvases, then whatever else arrives within --batch_timeout_ms (and
    whatever is already waiting after it), up to --max_batch photos; a request's photos are never split."""

    def __init__(self, predict_chroma, max_batch, timeout_ms):
        self._predict, self._max_batch, self._timeout = predict_chroma, max_batch, timeout_ms / 1000
        self._queue = queue.Queue()
        self.batches = self.photos = self.largest = 0
        self._thread = threading.Thread(target=self._run, name="colorgan-batcher", daemon=True)
        self._thread.start()

    def submit(self, canvases, hints=None):
        """canvases [k, R, R, 1] (and their canvas hints [k, R, R, 3], for a model that takes hints: always, zero
        where a photo has none) -> a Future of their chroma [k, R, R, 2]."""
        future = concurrent.futures.Future()
        self._queue.put((canvases, hints, future))
        return future

    def close(self):
        self._queue.put(_STOP)
        self._thread.join()

    def _run(self):
        waiting = None
        while True:
            group, waiting = waiting if waiting is not None else self._queue.get(), None
            if group is _STOP:
                return
            batch, count = [group], int(group[0].shape[0])
            deadline = time.monotonic() + self._timeout
            while count < self._max_batch:
                try:  # a timeout of 0 still takes what is already waiting
                    group = self._queue.get(timeout=max(deadline - time.monotonic(), 0.0))
                except queue.Empty:
                    break
                if group is _STOP or count + int(group[0].shape[0]) > self._max_batch:
                    waiting = group
                    break
                batch.append(group)
                count += int(group[0].shape[0])
            self._run_batch(batch, count)

    def _run_batch(self, batch, count):
        try:
            canvases = tf.concat([canvases for canvases, _, _ in batch], axis=0)
            with_hints = batch[0][1] is not None
            chroma = (self._predict(canvases, tf.concat([hints for _, hints, _ in batch], axis=0)) if with_hints else
                      self._predict(canvases))
        except Exception as e:  # noqa: BLE001 - every waiting request learns what went wrong.
            for _, _, future in batch:
                future.set_exception(e)
            return
        self.batches, self.photos, self.largest = self.batches + 1, self.photos + count, max(self.largest, count)
        start = 0
        for canvases, _, future in batch:
            future.set_result(chroma[start:start + canvases.shape[0]])
            start += canvases.shape[0]
