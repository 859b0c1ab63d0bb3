"""The config's literals are the registries' names: a name the config accepts has code behind it, and code
registered under a name the config refuses cannot be reached. `hpt.config` sits below the packages that hold
the registries (it cannot import them), so these tests hold the two equal."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

import hpt.methods
from hpt.config import (
    AutoConfig,
    Init,
    LoggerName,
    Method,
    MethodSection,
    MonitorConfig,
    Optimiser,
    PretrainConfig,
    ViewPolicy,
    load_config,
)
from hpt.data.views import POLICIES
from hpt.eval.protocols import PROTOCOLS
from hpt.methods import METHODS, syncs_batch_norm
from hpt.train.auto import RECIPES
from hpt.train.build import OPTIMISERS
from hpt.train.loggers import FILES
from hpt.transfer import STRATEGIES


def _literal(annotation) -> set[str]:
    return set(typing.get_args(annotation))


def test_every_method_the_config_names_is_registered_and_no_other():
    assert _literal(Method) == set(METHODS)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_a_method_record_is_its_files_and_its_config_sections(name):
    record = METHODS[name]
    assert record.name == name
    module = Path(hpt.methods.__file__).parent / f"{name}.py"
    assert module.is_file(), f"method '{name}' should live in hpt/methods/{name}.py"
    assert PretrainConfig.model_fields[name].annotation is record.section  # `PretrainConfig.<name>`
    assert issubclass(record.section, MethodSection)
    config = load_config(None, {"method": name})
    assert config.method_section == record.section() and config.learning_rate == record.section().lr
    assert syncs_batch_norm(config) is (not record.shuffles_keys)  # by default
    assert syncs_batch_norm(load_config(None, {"method": name, "train.sync_batch_norm": True})) is True


def test_only_method_sections_are_named_as_methods():
    sections = {name for name, field in PretrainConfig.model_fields.items() if _is_method_section(field.annotation)}
    assert sections == set(METHODS)


def _is_method_section(annotation) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, MethodSection)


def test_the_other_config_literals_are_their_registries():
    assert _literal(Init) == set(STRATEGIES)
    assert _literal(ViewPolicy) == set(POLICIES)
    assert _literal(LoggerName) == set(FILES)
    assert _literal(Optimiser) == set(OPTIMISERS)
    protocols = _literal(MonitorConfig.model_fields["protocol"].annotation)
    assert protocols - {"both"} <= set(PROTOCOLS) and "both" not in PROTOCOLS  # the monitor's: kNN, linear, or both
    assert set(AutoConfig().recipes) <= set(RECIPES)
