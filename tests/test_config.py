import typing

import pytest

from hpt.config import Method, PretrainConfig, load_config
from hpt.errors import HptError


def test_defaults_live_in_one_place():
    config = load_config()
    assert config == PretrainConfig()
    assert config.optim.lr is None and config.optim.weight_decay == 1e-4 and config.optim.momentum == 0.9
    assert config.views.policy == "full" and config.data.image_size == 224


def test_yaml_is_a_diff_and_overrides_win(tmp_path):
    file = tmp_path / "run.yaml"
    file.write_text("optim:\n  lr: 0.1\ntrain:\n  steps: 50\n")
    config = load_config(file, {"train.steps": "7"})
    assert config.optim.lr == 0.1 and config.train.steps == 7 and config.optim.momentum == 0.9
    assert config.learning_rate == 0.1  # optim.lr, where set, wins over the method's own


def test_each_method_has_its_own_learning_rate_unless_one_is_set():
    """The defaults measured continuing from a base (benchmarks/results/method_lr); `--lr` sets one for all."""
    for method in typing.get_args(Method):
        config = load_config(None, {"method": method})
        assert config.learning_rate == getattr(config, method).lr
        assert load_config(None, {"method": method, "optim.lr": 0.5}).learning_rate == 0.5
    assert load_config().learning_rate == load_config(None, {"method": "mocov2"}).mocov2.lr


STUDIES = {
    "sgd": [
        "method_lr",
        "method_lr_mocov2",
        "method_lr_byol",
        "method_lr_dino",
        "method_lr_dino_wide",
        "method_lr_dino_sharp",
        "method_lr_distill",
        "method_lr_distill_wide",
    ],
    "adamw": ["method_lr_adamw", "method_lr_adamw_byol_swav", "method_lr_adamw_dino_distill"],
    "lars": ["method_lr_lars", "method_lr_lars_wide", "method_lr_lars_swav"],
}
"""The committed studies (benchmarks/results/FOLDER) of each optimiser's rates, in order: a later study's pick
replaces an earlier one's for the methods it measured (MoCo v2's and BYOL's own widened method_lr's grid past 0.03,
method_lr_dino_wide and method_lr_distill_wide theirs past 0.03 and 0.1, method_lr_dino_sharp DINO's on 400
validation images a target, method_lr_lars_wide method_lr_lars's past 0.3; method_lr_lars_swav measures SwAV)."""


@pytest.mark.parametrize("optimiser", ["sgd", "adamw", "lars"])
def test_each_rate_per_optimiser_is_the_one_its_study_chose(optimiser):
    """`METHOD.lr`, `METHOD.adamw_lr`, `METHOD.lars_lr` are the committed studies' chosen rates (benchmarks/method_lr.py
    --optimiser, picked on validation; `STUDIES`), method by method: the best on validation or a default the study
    could not tell from it (within one standard error there: not moved on noise), and not one whose kNN accuracy on
    validation fell under the base's by over one standard error (`may_default`, the study's own list). SGD's is
    kept even under the base; adamw and lars adopt none there, and a method their study did not measure has none,
    so such a run needs optim.lr. MoCo v2's, BYOL's, DINO's and distillation's SGD rates come from studies of their
    own, held alike."""
    import json
    from pathlib import Path

    def study(folder: str) -> dict:
        return json.loads((Path(__file__).parents[1] / "benchmarks" / "results" / folder / "results.json").read_text())

    summary: dict = {}
    for folder in STUDIES[optimiser]:
        summary |= study(folder)["summary"]
    config = load_config()
    for method in typing.get_args(Method):
        section = getattr(config, method)
        rate = section.rate_for(optimiser)[1]
        if optimiser != "sgd" and (method not in summary or not summary[method]["may_default"]):
            assert rate is None, method
        else:
            assert str(rate) in summary[method]["may_default"], method


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"optim.lrr": 1}, "unknown key 'optim.lrr' (known here: name, lr, weight_decay"),
        ({"bogus": 1}, "unknown key 'bogus'"),
        ({"train.steps": "many"}, "'train.steps' got 'many'; input should be a valid integer"),
        ({"train.steps": 0}, "'train.steps' got 0; input should be greater than or equal to 1"),
        ({"views.policy": "strong"}, "'views.policy' got 'strong'; expected 'full', 'no-color'"),
    ],
)
def test_bad_keys_and_values_are_named(overrides, message):
    with pytest.raises(HptError) as info:
        load_config(overrides=overrides)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_yaml_files(tmp_path):
    with pytest.raises(HptError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(HptError, match="must hold a mapping"):
        load_config(tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("optim: {lr: [\n")
    with pytest.raises(HptError, match="not valid YAML"):
        load_config(tmp_path / "broken.yaml")


def test_every_labelled_split_named_relatively_is_recorded_resolved(tmp_path, monkeypatch):
    """The monitor's three splits, as `data.path`: the same folder named from another folder (a `--resume` started
    elsewhere) is the same config, and the recorded config names it wherever it is read from."""
    from hpt.config import resolve_paths

    for split in ("train", "val", "test"):
        (tmp_path / split).mkdir()
    monkeypatch.chdir(tmp_path)
    config = resolve_paths(load_config(None, {f"monitor.{s}": s for s in ("train", "val", "test")}))
    assert [config.monitor.train, config.monitor.val, config.monitor.test] == [
        str(tmp_path.resolve() / s) for s in ("train", "val", "test")
    ]
