"""Streaming tf.data input for training and evaluation, read from a dataset made by make_tfrecords.

The training stream is a pure function of (seed, epoch, position in epoch) when `deterministic=True`: file order and
the shuffle buffer are seeded per epoch, and every augmentation draws a stateless seed from the example's epoch and
index. Resuming at a global step therefore only has to skip serialized records of the current epoch (read, not
decoded), which is why a strategy's DistributedIterator need not be checkpointed (tensorflow#56372).
"""

import os

import tensorflow as tf

from colorgan.core import color
from colorgan.data import data_service as service
from colorgan.data import records

_AUTOTUNE = tf.data.AUTOTUNE
_MAX_EPOCHS = 2**62
_SEED_MIX = 1_000_003  # mixes the user's seed with the epoch into one int64 shuffle seed
_RECORDS_PER_FILE = 2**32  # an example's index under the tf.data service: file index * this + record index


def make_dataset(data_dir, split, batch_size, image_size, *, input_context=None, training=True, color_space="rgb",
                 seed=0, deterministic=False, start_position=0, shuffle_buffer=2048, random_crop=True,
                 cycle_length=16, data_service=None, job_name=None):
    """A dataset of (inputs, targets) batches for one input pipeline; ready for
    `strategy.distribute_datasets_from_function`.

    batch_size: per replica. image_size: side of the training squares, at most the stored size; larger stored
    images are randomly cropped (or resized, with random_crop=False) when training and centre-cropped otherwise.
    color_space: a colorgan.color.ColorSpace or its name, which makes the (inputs, targets) pair from the gray and
    colour images: 'rgb' gives (gray [0,1] [b,s,s,1], rgb [0,1] [b,s,s,3]); 'lab' gives (L of the gray image
    normalized to [-1,1] [b,s,s,1], ab of the colour image normalized to about [-1,1] [b,s,s,2]); None gives the
    colour images alone, uint8 [b,s,s,3], for the training step to convert on its device (`model_pair`).
    start_position: global batches already consumed (the trainer's checkpointed data position, which runs ahead of
    its step after skipped non-finite batches); the stream resumes exactly there (with deterministic=True).
    Training streams repeat forever; evaluation streams make one pass, in a fixed order.
    data_service: a tf.data service dispatcher's address (training only): its workers run the pipeline, each taking
    one (epoch, shard file) at a time, and every pipeline naming the same `job_name` shares their batches. Order is
    then not fixed, and the stream starts at the epoch that holds start_position (`data_service.py`).
    """
    space = color.color_space(color_space) if color_space is not None else None
    manifest = records.read_manifest(data_dir)
    stored, encoding = manifest["image_size"], manifest["encoding"]
    if image_size > stored:
        raise records.DatasetError(
            f"{data_dir}: image_size {image_size} is larger than the stored {stored}; rebuild the dataset with "
            f"make_tfrecords --image_size={image_size} or train smaller")
    files, counts = _readable_shards(data_dir, manifest, split)
    pipelines = input_context.num_input_pipelines if input_context else 1
    pipeline_id = input_context.input_pipeline_id if input_context else 0
    replicas_fed = _replicas_per_pipeline(input_context, pipelines)
    if data_service:  # the service splits the work: every pipeline describes the whole stream
        replicas_fed, pipelines, pipeline_id = replicas_fed * pipelines, 1, 0
    num_examples = _pipeline_examples(counts, pipelines, pipeline_id)
    by_file = len(files) >= pipelines
    if by_file:
        files = files[pipeline_id::pipelines]
    # Evaluation is always ordered: the same val images must land in every sample sheet.
    deterministic = deterministic or not training
    if num_examples < batch_size and training:
        raise records.DatasetError(f"{data_dir}: split {split} gives input pipeline {pipeline_id} only "
                                   f"{num_examples} examples, fewer than one batch of {batch_size}")

    def epoch_records(epoch):
        """(epoch, index, serialized) of one epoch of this pipeline, in a seeded order."""
        file_order = tf.data.Dataset.from_tensor_slices(files)
        epoch_seed = tf.constant(seed, tf.int64) * _SEED_MIX + epoch
        if training:
            file_order = file_order.shuffle(len(files), seed=epoch_seed)
        serialized = file_order.interleave(
            tf.data.TFRecordDataset, cycle_length=min(cycle_length, len(files)), block_length=1,
            num_parallel_calls=_AUTOTUNE, deterministic=deterministic or not by_file)
        if training:
            serialized = serialized.shuffle(shuffle_buffer, seed=epoch_seed)
        indexed = serialized.enumerate()
        if not by_file:
            # Every pipeline reads the same seeded stream and keeps every P-th element, indexed (so augmented) as in
            # that stream: within the first epoch a global batch holds the same examples whatever the number of
            # pipelines (later epochs shift when P does not divide the example count).
            indexed = indexed.shard(pipelines, pipeline_id)
        return indexed.map(lambda index, record: (epoch, index, record))

    def decode_batch(epochs, indices, serialized):
        """Parses a batch at once and decodes only the RGB images: gray is derived as their luma (bit-identical
        to the stored gray for PNG records), so the pair cannot diverge under any crop or flip."""
        encoded = records.parse_example(serialized)[records.RGB_KEY]

        def square(args):
            epoch, index, image_bytes = args
            rgb = tf.ensure_shape(records.decode_rgb(image_bytes, encoding), [stored, stored, 3])
            if not training:
                return _centre_square(rgb, image_size)
            example_seed = tf.stack([tf.constant(seed, tf.int64) * _SEED_MIX + epoch, index])
            rgb = _random_square(rgb, image_size, example_seed, random_crop)
            return tf.image.stateless_random_flip_left_right(rgb, example_seed + 1)

        rgb = tf.map_fn(square, (epochs, indices, encoded), parallel_iterations=batch_size,
                        fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.uint8))
        return model_pair(space, rgb) if space else rgb

    first_epoch, offset = divmod(start_position * replicas_fed * batch_size, num_examples)
    if training and data_service:
        dataset = _records_by_split(files, seed, first_epoch, cycle_length).shuffle(shuffle_buffer)
    elif training:
        dataset = tf.data.Dataset.range(first_epoch, _MAX_EPOCHS).flat_map(
            lambda epoch: epoch_records(epoch).skip(tf.where(epoch == first_epoch, tf.constant(offset, tf.int64),
                                                             tf.constant(0, tf.int64))))
    else:
        dataset = epoch_records(tf.constant(0, tf.int64))
    dataset = dataset.batch(batch_size, drop_remainder=True)
    dataset = dataset.map(decode_batch, num_parallel_calls=_AUTOTUNE, deterministic=deterministic)
    options = tf.data.Options()
    options.deterministic = deterministic
    options.autotune.enabled = True
    dataset = dataset.with_options(options)
    if training and data_service:
        dataset = service.distributed(dataset, data_service, job_name)
    return dataset.prefetch(_AUTOTUNE)


def _records_by_split(files, seed, first_epoch, cycle_length):
    """(epoch, index, serialized) of the training stream from `first_epoch` on, for the tf.data service: its source
    is the sequence of (epoch, shard file) in each epoch's seeded file order, which the service hands out one at a
    time (a split), and `index` (the file's place in the dataset, then the record's in the file) keeps each
    example's augmentation a function of the example, whichever worker reads it."""
    names = tf.constant(files)
    file_count = len(files)

    def read(split):
        epoch = split // file_count
        order = tf.random.experimental.stateless_shuffle(tf.range(file_count, dtype=tf.int64),
                                                         seed=tf.stack([tf.constant(seed, tf.int64), epoch]))
        file_index = order[split % file_count]
        return tf.data.TFRecordDataset(names[file_index]).enumerate().map(
            lambda index, record: (epoch, file_index * _RECORDS_PER_FILE + index, record))

    return tf.data.Dataset.range(first_epoch * file_count, _MAX_EPOCHS).interleave(
        read, cycle_length=min(cycle_length, file_count), block_length=1, num_parallel_calls=_AUTOTUNE,
        deterministic=False)


@tf.function(jit_compile=True)
def model_pair(space, rgb):
    """(inputs, targets) of ColorSpace `space` from a batch of uint8 colour images [b, s, s, 3]: the gray is their
    luma, as the records' is. Wherever it runs (the input pipeline, or the training step with --color_maths=device),
    the same compiled function gives the same numbers.

    XLA-compiled (tf.data runs it too): fused into a few passes over the pixels, the Lab conversion costs about a
    sixth of the CPU time of its op-by-op form, which made it most of the host's work per example
    (benchmarks/bench_pipeline.py --stages)."""
    return space.model_input(color.luma_u8(rgb)), space.targets(rgb)  # uint8 in: lookup tables


def examples_per_pipeline(data_dir, split, input_context=None):
    """How many examples one epoch gives each input pipeline (the unit of the stream's epochs)."""
    manifest = records.read_manifest(data_dir)
    _, counts = _readable_shards(data_dir, manifest, split)
    pipelines = input_context.num_input_pipelines if input_context else 1
    pipeline_id = input_context.input_pipeline_id if input_context else 0
    return _pipeline_examples(counts, pipelines, pipeline_id)


def batches_per_epoch(data_dir, split, batch_size, input_context=None):
    """Global batches one epoch of this pipeline gives (each takes `batch_size` per replica it feeds); 0 for an
    empty split."""
    if not records.read_manifest(data_dir)["splits"][split]["num_examples"]:
        return 0
    pipelines = input_context.num_input_pipelines if input_context else 1
    per_global_batch = _replicas_per_pipeline(input_context, pipelines) * batch_size
    return examples_per_pipeline(data_dir, split, input_context) // per_global_batch


def _pipeline_examples(shard_counts, pipelines, pipeline_id):
    """Examples of one pipeline: its shards' when sharding by file, else every P-th example of the stream."""
    if len(shard_counts) >= pipelines:
        return sum(shard_counts[pipeline_id::pipelines])
    return len(range(pipeline_id, sum(shard_counts), pipelines))


def find_damaged_shard(data_dir, *splits):
    """After a record failed to read or decode in the compiled step (whose error names no file): the first shard of
    `splits` that fails its full checks (size, sha256, every record decoded), as a DatasetError, or None."""
    from colorgan.data import verify  # noqa: PLC0415 - only needed on this rare path.

    manifest = records.read_manifest(data_dir)
    for split in splits:
        for shard in manifest["splits"][split]["shards"]:
            _, problems = verify.verify_shard(data_dir, manifest, shard)
            if problems:
                return records.DatasetError(f"{os.path.join(data_dir, shard['file'])}: {problems[0]}")
    return None


def _readable_shards(data_dir, manifest, split):
    """(paths, example counts) of a split's shards, each checked present and of its recorded size; DatasetError
    naming the shard (or the empty split) otherwise."""
    files = records.shard_paths(data_dir, manifest, split)
    shards = manifest["splits"][split]["shards"]
    for path, shard in zip(files, shards):
        problem = records.shard_size_problem(data_dir, shard)
        if problem == "missing":
            raise records.DatasetError(f"{path}: shard listed in the manifest is missing")
        if problem:
            raise records.DatasetError(f"{path}: {problem} (run data_prep/inspect_tfrecords.py)")
    counts = [shard["num_examples"] for shard in shards]
    if not sum(counts):
        raise records.DatasetError(f"{data_dir}: split {split} has no examples")
    return files, counts


def _replicas_per_pipeline(input_context, pipelines):
    if input_context is None:
        return 1
    return max(1, input_context.num_replicas_in_sync // pipelines)


def _random_square(image, size, seed, random_crop):
    if image.shape[0] == size:
        return image
    if random_crop:
        return tf.image.stateless_random_crop(image, [size, size, image.shape[-1]], seed)
    return tf.cast(tf.round(tf.image.resize(tf.cast(image, tf.float32), [size, size], antialias=True)), image.dtype)


def _centre_square(image, size):
    offset = (image.shape[0] - size) // 2
    return image[offset:offset + size, offset:offset + size]

