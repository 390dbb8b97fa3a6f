"""sync_batch_norm gives Keras's synchronised batch norm's numbers, forward and backward, on two CPU replicas."""

import subprocess
import sys
import textwrap

_SCRIPT = textwrap.dedent("""
    import keras, numpy as np, tensorflow as tf
    from colorgan.modeling import sync_batch_norm
    from colorgan.training import distribute

    strategy = distribute.make_strategy("mirrored", cpu_replicas=2)
    x = np.random.default_rng(0).normal(size=(4, 6, 6, 3)).astype("float32")

    def run(kind, dtype):
        keras.utils.set_random_seed(0)
        with strategy.scope():
            inputs = keras.Input((6, 6, 3))
            y = inputs
            for i in range(3):
                y = kind(synchronized=True, dtype=dtype)(keras.layers.Conv2D(4, 3, padding="same", dtype=dtype)(y))
            model = keras.Model(inputs, y)

        def step(batch):
            with tf.GradientTape() as tape:
                tape.watch(batch)
                loss = tf.reduce_sum(model(batch, training=True) ** 3)
            return tape.gradient(loss, [batch, *model.trainable_variables])

        dataset = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(x))
        grads = strategy.run(tf.function(step), args=(next(iter(dataset)),))
        return [np.concatenate([t.numpy() for t in strategy.experimental_local_results(grads[0])])] + [
            sum(t.numpy() for t in strategy.experimental_local_results(g)) for g in grads[1:]] + [
            v.numpy() for v in model.non_trainable_variables]

    for dtype in ("float32", "mixed_bfloat16"):
        ours, keras_own = (run(kind, dtype) for kind in (sync_batch_norm.SyncBatchNormalization,
                                                          keras.layers.BatchNormalization))
        assert len(ours) == len(keras_own) == 1 + 3 * 4 + 3 * 2  # input, conv and BN gradients; moving statistics
        for mine, theirs in zip(ours, keras_own):
            np.testing.assert_array_equal(mine, theirs)
        print("same", dtype)
""")


def test_sync_batch_norm_matches_keras_on_two_replicas():
    result = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=300)
    assert result.stdout.split("\n")[-3:] == ["same float32", "same mixed_bfloat16", ""], result.stderr[-3000:]
