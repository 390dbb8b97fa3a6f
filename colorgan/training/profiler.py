"""--profile_steps=A,B: a TensorFlow profiler trace of exactly training steps A..B, for TensorBoard's Profile tab."""

import contextlib
import math
import os

import tensorflow as tf

from colorgan.training import run_log


class StepProfiler:
    """--profile_steps=A,B: the TensorFlow profiler records steps A..B, and only those (compiled calls are split at
    A and B); each call is marked in the trace as a `train` event with its first step (step_num) and step count."""

    def __init__(self, config, log, tracing=True):
        self.first, self.last = config.profile_range()
        self.logdir = os.path.join(config.model_dir, run_log.TENSORBOARD_DIRNAME)
        self.log, self.tracing = log, tracing
        self.running = False

    def steps_until_edge(self, step):
        """Steps from `step` to the next edge of the range (A - 1, the step before it, and B)."""
        ahead = [edge - step for edge in (self.first - 1, self.last) if edge > step]
        return min(ahead) if ahead else math.inf

    @contextlib.contextmanager
    def call(self, step, steps):
        """Around a call running steps step+1..step+steps: starts the trace at the range, marks the call, stops
        after B."""
        if self.tracing and not self.running and self.first - 1 <= step < self.last:
            tf.profiler.experimental.start(self.logdir)
            self.running = True
            self.log(f"train: profiling steps {step + 1}..{self.last} into {self.logdir}")
        if not self.running:
            yield
            return
        with tf.profiler.experimental.Trace("train", step_num=step + 1, steps=steps, _r=1):
            yield
        if step + steps >= self.last:
            self.stop()

    def stop(self):
        if self.running:
            tf.profiler.experimental.stop()
            self.running = False
            self.log(f"train: profile written to {self.logdir} (TensorBoard's Profile tab)")
