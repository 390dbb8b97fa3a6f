"""What `launch/train.py` runs once its flags are parsed: validate, pick the strategy, resolve the config, train;
errors as one line, and the exit code schedulers read."""

import dataclasses
import signal
import sys

from absl import logging

from colorgan.data import data_service
from colorgan.data import records
from colorgan.modeling import backbones
from colorgan.training import checkpoints
from colorgan.training import distribute
from colorgan.training import trainer

STOPPED_EXIT_CODE = 128 + signal.SIGTERM


def _fail(problems, code=2):
    for problem in problems:
        print(f"train: error: {problem}", file=sys.stderr)
    return code


def train_main(config):
    """Returns the process exit code: 0 done, 1 training failed, 2 bad flags or environment, 143 (128 + SIGTERM) or
    130 (128 + SIGINT, Ctrl-C) stopped before --train_steps, with a checkpoint to resume from: schedulers
    (Kubeflow's ExitCode policy, local_cluster --restarts) read 128+ as retryable, where 0 would mark the unfinished
    run a success. A worker stopped because another one was signalled exits 143."""
    problems = config.validate()
    if problems:
        return _fail(problems)
    if config.data_service:
        try:
            address = data_service.resolve_address(config.data_service)
        except RuntimeError as e:
            return _fail([f"--data_service={config.data_service}: {e}"])
        unreachable = data_service.unreachable(address)
        if unreachable:
            return _fail([f"--data_service={config.data_service}: {unreachable} at {address}"])
        config = dataclasses.replace(config, data_service=address)
    try:
        strategy = distribute.make_strategy(config.strategy, config.cpu_replicas, config.cluster)
    except (ValueError, RuntimeError, KeyError) as e:
        return _fail([f"--strategy={config.strategy}: {str(e).splitlines()[0]}"])
    problems = config.validate(num_replicas=strategy.num_replicas_in_sync)
    if problems:
        return _fail(problems)
    # tf.distribute logs every collective at INFO; keep the run's own lines readable.
    logging.set_verbosity(logging.WARNING)

    print(f"train: {type(strategy).__name__} with {strategy.num_replicas_in_sync} replica(s), "
          f"{distribute.cluster_description(strategy)}", file=sys.stderr, flush=True)
    config = checkpoints.resolve_config(config, _log)
    try:
        run = trainer.Trainer(config, strategy, log=_log)
    except ValueError as e:  # a model that cannot be built at this size, depth or colour space
        return _fail([f"--generator={config.generator} --discriminator={config.discriminator} "
                      f"--image_size={config.image_size}: {e}"])
    try:
        final_step = run.train()
    except (checkpoints.TrainingError, records.DatasetError) as e:
        return _fail([str(e)], code=1)
    except backbones.WeightsError as e:
        return _fail([str(e)])
    if final_step < config.train_steps:
        _log(f"train: stopped at step {final_step} of {config.train_steps}; run the same command to resume")
        return 128 + run.stop_signal if run.stop_signal else STOPPED_EXIT_CODE
    _log(f"train: done at step {final_step}; checkpoints, samples and metrics in {config.model_dir}")
    return 0


def _log(message):
    print(message, file=sys.stderr, flush=True)
