"""Settings dataclasses whose fields are absl flags, each declared once with its default, help and choices.

Every tool defines its flags from its dataclass (training's `train_config.TrainConfig`, data prep's
`conversion_config.ConversionConfig`, colorize's, export's, evaluate's and serve's), builds it back from parsed
flags, checks choices and bounds and saves flagfiles the same way, through this module. Nothing here imports
TensorFlow, so `--help` never waits for it. A field declared without help (set by library callers only, e.g. a
progress interval) is no flag.
"""

import dataclasses

from absl import flags

# Flags defined from here belong to the module that calls define_flags (its --help lists them), not to this helper.
flags.disclaim_key_flags()


def field(default, help_text, choices=None, flag_name=None, minimum=None, maximum=None, positive=False):
    """A dataclass field that is also the flag --NAME (or --flag_name), with this default, help, choices and bounds
    (checked by `value_problems`, so every bad value is reported, not the first one absl meets)."""
    return dataclasses.field(default=default, metadata={"help": help_text, "choices": choices, "flag": flag_name,
                                                        "minimum": minimum, "maximum": maximum, "positive": positive})


def flag_fields(cls):
    """{field name: field} of a settings dataclass's fields that are flags, in declaration order."""
    return {f.name: f for f in dataclasses.fields(cls) if "help" in f.metadata}


def flag_name(field_):
    return field_.metadata.get("flag") or field_.name


def define_flags(cls, flag_values=flags.FLAGS):
    """Defines one absl flag per flag field of `cls`; a tuple field is a repeatable flag."""
    for field_ in flag_fields(cls).values():
        name, default, help_text, choices = (flag_name(field_), field_.default, field_.metadata["help"],
                                             field_.metadata["choices"])
        if choices:
            flags.DEFINE_enum(name, default, choices, help_text, flag_values=flag_values)
        elif field_.type in (bool, "bool"):
            flags.DEFINE_bool(name, default, help_text, flag_values=flag_values)
        elif field_.type in (int, "int"):
            flags.DEFINE_integer(name, default, help_text, flag_values=flag_values)
        elif field_.type in (float, "float"):
            flags.DEFINE_float(name, default, help_text, flag_values=flag_values)
        elif field_.type in (tuple, "tuple"):
            flags.DEFINE_multi_string(name, list(default), help_text, flag_values=flag_values)
        else:
            flags.DEFINE_string(name, default, help_text, flag_values=flag_values)


def from_flags(cls, flag_values=flags.FLAGS):
    """The `cls` that parsed flags give (repeatable flags as tuples)."""
    values = {}
    for name, field_ in flag_fields(cls).items():
        value = flag_values[flag_name(field_)].value
        values[name] = tuple(value) if field_.type in (tuple, "tuple") else value
    return cls(**values)


def value_problems(config):
    """One line per flag whose value is not one of its field's choices, or outside its bounds."""
    problems = []
    for field_ in flag_fields(type(config)).values():
        choices, value, name = field_.metadata["choices"], getattr(config, field_.name), flag_name(field_)
        minimum, maximum = field_.metadata.get("minimum"), field_.metadata.get("maximum")
        if choices is not None and value not in choices:
            problems.append(f"--{name}={value}: expected one of {', '.join(map(str, choices))}")
        elif field_.metadata.get("positive") and not value > 0:
            problems.append(f"--{name}={value}: must be positive")
        elif minimum is not None and maximum is not None and not minimum <= value <= maximum:
            problems.append(f"--{name}={value}: not in {minimum:g}..{maximum:g}")
        elif minimum is not None and value < minimum:
            problems.append(f"--{name}={value}: must be at least {minimum:g}")
        elif maximum is not None and value > maximum:
            problems.append(f"--{name}={value}: must be at most {maximum:g}")
    return problems


def flag_values(config):
    """{flag name: value} of a config's flags, a repeatable flag's values joined by commas (one scalar each, as
    TensorBoard's hyperparameters are)."""
    return {flag_name(field_): ",".join(map(str, value)) if isinstance(value, tuple) else value
            for field_, value in ((f, getattr(config, f.name)) for f in flag_fields(type(config)).values())}


def to_flagfile_text(config):
    """A `--flagfile` that reproduces the config exactly (booleans as --name / --noname, one line per value of a
    repeatable flag)."""
    lines = []
    for field_ in flag_fields(type(config)).values():
        name, value = flag_name(field_), getattr(config, field_.name)
        if isinstance(value, bool):
            lines.append(f"--{name}" if value else f"--no{name}")
        elif isinstance(value, tuple):
            lines.extend(f"--{name}={item}" for item in value)
        else:
            lines.append(f"--{name}={value!r}" if isinstance(value, float) else f"--{name}={value}")
    return "\n".join(lines) + "\n"
