"""Tests of colorgan.core.flag_config: a settings dataclass's fields as absl flags, read back, checked and saved."""

import dataclasses
import sys

import pytest
from absl import flags

from colorgan.core import flag_config

_field = flag_config.field


@dataclasses.dataclass(frozen=True)
class Settings:
    size: int = _field(8, "Side.", minimum=1)
    scale: float = _field(0.5, "Scale.", minimum=0.0, maximum=1.0)
    mode: str = _field("crop", "Mode.", ("crop", "pad"))
    name: str = _field("", "Name.")
    rate: float = _field(1.0, "Rate.", positive=True)
    fast: bool = _field(False, "Fast.")
    folders: tuple = _field((), "Folders; repeat the flag.", flag_name="folder")
    interval_s: float = 1.0  # no help: not a flag


def _values(*argv):
    values = flags.FlagValues()
    flag_config.define_flags(Settings, values)
    values(["prog", *argv])
    return values


def test_flags_are_the_fields_with_help_under_their_flag_names():
    values = _values()
    assert set(values) == {"size", "scale", "mode", "name", "rate", "fast", "folder"}
    assert flag_config.from_flags(Settings, values) == Settings()


def test_parsed_flags_give_the_dataclass_with_repeatable_flags_as_tuples():
    values = _values("--size=12", "--scale=0.25", "--mode=pad", "--name=x", "--fast", "--folder=a", "--folder=b")
    assert flag_config.from_flags(Settings, values) == Settings(
        size=12, scale=0.25, mode="pad", name="x", fast=True, folders=("a", "b"))


def test_a_value_outside_the_choices_is_refused_by_the_parser_and_by_the_check():
    with pytest.raises(flags.IllegalFlagValueError, match="crop|pad"):
        _values("--mode=zoom")
    assert flag_config.value_problems(Settings(mode="zoom")) == ["--mode=zoom: expected one of crop, pad"]
    assert flag_config.value_problems(Settings()) == []


def test_every_value_out_of_bounds_is_one_line_of_its_own():
    assert flag_config.value_problems(Settings(size=0, scale=1.5, mode="zoom", rate=0.0)) == [
        "--size=0: must be at least 1", "--scale=1.5: not in 0..1", "--mode=zoom: expected one of crop, pad",
        "--rate=0.0: must be positive"]
    values = _values("--size=-3", "--scale=-1")  # the parser leaves bounds to the check: all are reported at once
    assert flag_config.value_problems(flag_config.from_flags(Settings, values)) == [
        "--size=-3: must be at least 1", "--scale=-1.0: not in 0..1"]


def test_the_flagfile_reproduces_the_settings(tmp_path):
    settings = Settings(size=3, scale=1e-5, mode="pad", name="a b", fast=True, folders=("x", "y z"))
    path = tmp_path / "settings.cfg"
    path.write_text(flag_config.to_flagfile_text(settings))
    assert flag_config.from_flags(Settings, _values(f"--flagfile={path}")) == settings


def test_flags_belong_to_the_module_that_defines_them_so_its_help_lists_them():
    values = flags.FlagValues()
    flag_config.define_flags(Settings, values)
    assert {flag.name for flag in values.get_key_flags_for_module(sys.modules[__name__])} == set(values)
    assert values.get_key_flags_for_module(flag_config) == []
