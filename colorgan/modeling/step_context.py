"""A value the training step sets while it traces its models and their layers read, such as the step's random
draws (`example_noise`) or whether the encoder is frozen (`backbones`): what a layer needs from the step without
becoming one of its call arguments, which Keras would carry into every saved model."""

import contextlib
import threading


class StepValue:
    """One value per thread (MirroredStrategy traces each replica's function in a thread of its own), None outside
    a `set` block; blocks nest."""

    def __init__(self):
        self._local = threading.local()

    @contextlib.contextmanager
    def set(self, value):
        previous = self.get()
        self._local.value = value
        try:
            yield value
        finally:
            self._local.value = previous

    def get(self):
        return getattr(self._local, "value", None)
