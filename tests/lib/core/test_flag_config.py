"""Tests of colorgan.core.flag_config: a settings dataclass's fields as absl flags, read back, checked and saved."""

import dataclasses
import sys

import pytest
from absl import flags

from colorgan.core import flag_config

_field = flag_config.field


@dataclasses.dataclass(frozen=True)
class Settings:
    size: int = _field(8, "Side.")
    scale: float = _field(0.5, "Scale.")
    mode: str = _field("crop", "Mode.", ("crop", "pad"))
    name: str = _field("", "Name.")
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
    assert set(values) == {"size", "scale", "mode", "name", "fast", "folder"}
    assert flag_config.from_flags(Settings, values) == Settings()


def test_parsed_flags_give_the_dataclass_with_repeatable_flags_as_tuples():
    values = _values("--size=12", "--scale=0.25", "--mode=pad", "--name=x", "--fast", "--folder=a", "--folder=b")
    assert flag_config.from_flags(Settings, values) == Settings(
        size=12, scale=0.25, mode="pad", name="x", fast=True, folders=("a", "b"))


def test_a_value_outside_the_choices_is_refused_by_the_parser_and_by_the_check():
    with pytest.raises(flags.IllegalFlagValueError, match="crop|pad"):
        _values("--mode=zoom")
    assert flag_config.choice_problems(Settings(mode="zoom")) == ["--mode=zoom: expected one of ('crop', 'pad')"]
    assert flag_config.choice_problems(Settings()) == []


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
