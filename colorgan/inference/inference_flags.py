"""The settings of the tools that load a trained model, as `flag_config` dataclasses: --model, --step and
--render_size are declared once here, for colorize (`colorize_job.ColorizeConfig`), evaluate, export and serve
(`serving.serve_config`). Without TensorFlow, so the tools' --help is quick."""

import dataclasses

from colorgan.core import flag_config
from colorgan.core import storage
from colorgan.inference import photo_files
from colorgan.inference import portable_model

_field = flag_config.field
EXPORT_FORMATS = ("saved_model", *portable_model.MODEL_FILES)


def model_field(runs_portable=False):
    return _field("", "A training run's --model_dir or an export made by export.py (a base of versions: its highest)"
                  + ("; or the model.onnx / model.tflite of such an export, run without TensorFlow." if runs_portable
                     else "."))


def step_field():
    return _field(0, "Checkpoint step of a run (0: the latest).", minimum=0)


def render_size_field():
    return _field(0, "Side of the square the model sees (0: the training size).", minimum=0)


def max_pixels_field(help_text):
    return _field(photo_files.DEFAULT_MAX_PIXELS, help_text, positive=True)


def required(config, *names):
    """One line per field among `names` whose flag was left empty."""
    fields = flag_config.flag_fields(type(config))
    return [f"--{flag_config.flag_name(fields[name])} is required" for name in names if not getattr(config, name)]


def output_dir_problems(output_dir):
    """An --output_dir that exists as a file, or cannot be read, found before any work."""
    problem = output_dir and storage.directory_problem(output_dir)
    return [f"--output_dir={output_dir}: {problem}"] if problem else []


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    model_dir: str = _field("", "The training run to export (its flags.cfg and checkpoints).")
    export_dir: str = _field("", "BASE/VERSION (TF Serving's layout) or BASE (the next version is written).")
    step: int = step_field()
    render_size: int = render_size_field()
    format: str = _field("saved_model", "saved_model: TF Serving's SavedModel (and the Keras file); onnx / tflite: "
                                        "the chroma network as model.onnx / model.tflite, which colorize.py runs "
                                        "with onnxruntime / LiteRT and without TensorFlow (the [onnx] / [tflite] "
                                        "extra).", choices=EXPORT_FORMATS)
    overwrite: bool = _field(False, "Replace an existing export.")
    max_pixels: int = max_pixels_field("serving_default refuses larger photos (every frame of a GIF counted) before "
                                       "decoding them, as serve.py's --max_pixels does.")

    def validate(self):
        """One line per bad flag."""
        return [*required(self, "model_dir", "export_dir"), *flag_config.value_problems(self)]


@dataclasses.dataclass(frozen=True)
class EvaluateConfig:
    model: str = model_field()
    step: int = step_field()
    render_size: int = render_size_field()
    data_dir: str = _field("", "A dataset made by make_tfrecords.py.")
    split: str = _field("val", "The dataset split to evaluate.", choices=("train", "val"))
    input_dirs: tuple = _field((), "Colour photos (folder, file or glob; repeatable).", flag_name="input_dir")
    samples: int = _field(0, "Write this many gray | colorized | real sheets to --output_dir.", minimum=0)
    output_dir: str = _field("", "Where evaluation.json and sample sheets go (optional).")
    max_pixels: int = max_pixels_field("Larger photos are skipped.")
    hints: int = _field(0, "Reveal this many points per photo from its colour original, as Zhang et al. 2017 evaluate "
                           "(fixed seed; --input_dir, a model trained with --hints). 0: none.", minimum=0)

    def validate(self):
        """One line per bad flag; the output folder is checked now, not after the whole evaluation has run."""
        problems = [*required(self, "model"), *flag_config.value_problems(self)]
        if bool(self.data_dir) == bool(self.input_dirs):
            problems.append("give either --data_dir or --input_dir")
        if self.hints and self.data_dir:
            problems.append(f"--hints={self.hints} with --data_dir: points are revealed from full-resolution photos; "
                            "use --input_dir")
        if self.samples and not self.output_dir:
            problems.append(f"--samples={self.samples} needs --output_dir")
        return problems + output_dir_problems(self.output_dir)
