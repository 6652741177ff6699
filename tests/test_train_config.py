"""Config utilities: arg strings, overrides with type checks, config files, validation."""

import os

import ml_collections
import pytest

from mechjax import train
from mechjax.train.loop import _boundaries

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize(
    "arg, expected",
    [
        (None, {}),
        ("", {}),
        ("runlocal", {"runlocal": True}),
        ("runlocal,seeds=8", {"runlocal": True, "seeds": 8}),
        ("lr=0.5,name=abc,steps=(1, 2)", {"lr": 0.5, "name": "abc", "steps": (1, 2)}),
    ],
    ids=["none", "empty", "flag", "flag_and_int", "literals"],
)
def test_parse_arg_free_form(arg, expected):
    assert train.parse_arg(arg) == expected


def test_parse_arg_with_defaults_converts_and_rejects_unknown():
    got = train.parse_arg("seeds=8,lr=1", runlocal=False, seeds=1, lr=0.1)
    assert got == {"runlocal": False, "seeds": 8, "lr": 1.0}
    assert isinstance(got["lr"], float)
    with pytest.raises(train.ConfigError, match=r"'seed' is not known \(did you mean 'seeds'\?\)"):
        train.parse_arg("seed=2", runlocal=False, seeds=1)
    with pytest.raises(train.ConfigError, match="expects an int"):
        train.parse_arg("seeds=2.5", seeds=1)


def _config():
    c = train.base_config()
    c.task.width = 16
    c.task.name = "x"
    return c


def test_overrides_typed_and_nested():
    c = train.apply_overrides(
        _config(),
        ["lr=0.1", "total_steps=7", "progress=false", "task.width=32", "checkpoint_steps=(3,5)"],
    )
    assert (c.lr, c.total_steps, c.progress, c.task.width) == (0.1, 7, False, 32)
    assert tuple(c.checkpoint_steps) == (3, 5)
    c = train.apply_overrides(_config(), {"lr": 1})  # int where a float is expected is fine
    assert c.lr == 1.0 and isinstance(c.lr, float)


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "lrr=0.1",
            r"unknown config key 'lrr' \(did you mean 'lr'\?\)\. Valid keys: .*task\.width",
        ),
        ("task.wdth=3", r"unknown config key 'task\.wdth' \(did you mean 'task\.width'"),
        ("task=3", "unknown config key 'task'"),
        ("total_steps=1.5", r"config\.total_steps expects an int \(default 1000\), got 1\.5"),
        ("task.width=abc", r"config\.task\.width expects an int"),
        ("progress=maybe", r"config\.progress expects a bool"),
        ("lr", "must look like key=value"),
    ],
    ids=[
        "unknown",
        "unknown_nested",
        "dict_key",
        "float_for_int",
        "str_for_int",
        "bad_bool",
        "no_eq",
    ],
)
def test_bad_overrides_fail_naming_the_key(override, message):
    with pytest.raises(train.ConfigError, match=message):
        train.apply_overrides(_config(), [override])


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("optimizer", "adagrad", "valid optimizers are adam, adamw, sgd"),
        ("schedule", "linear", "valid schedules are"),
        ("total_steps", 0, "positive int"),
        ("lr", -1.0, "must be > 0"),
        ("checkpoint_steps", (0,), "positive ints"),
        ("eval_steps", (5, -1), "positive ints"),
    ],
)
def test_validate_config(key, value, message):
    c = train.base_config()
    c[key] = value
    with pytest.raises(train.ConfigError, match=message):
        train.validate_config(c)


def test_load_config_file_and_fill_defaults(tmp_path):
    c = train.load_config_file(os.path.join(ROOT, "configs/demo/repeat.py:runlocal,seeds=3"))
    assert isinstance(c, ml_collections.ConfigDict)
    assert (c.experiment, c.task.seeds, c.total_steps) == ("demo", 3, 60)
    with pytest.raises(train.ConfigError, match="does not exist"):
        train.load_config_file(str(tmp_path / "nope.py"))
    partial = ml_collections.ConfigDict({"experiment": "x", "lr": 0.5})
    full = train.fill_defaults(partial)
    assert full.lr == 0.5 and full.eval_every == train.base_config().eval_every
    with pytest.raises(train.ConfigError, match="experiments/nope/task.py does not exist"):
        train.load_task_module(ROOT, "nope")


def test_every_config_has_runlocal_and_a_docstring_command():
    import glob

    for path in glob.glob(os.path.join(ROOT, "configs", "*", "*.py")):
        if os.path.basename(path).startswith("_"):
            continue
        c = train.fill_defaults(train.load_config_file(path + ":runlocal"))
        train.validate_config(c)
        assert c.experiment, path
        doc = open(path).read()
        assert "mechjax run" in doc, f"{path}: the docstring should hold the command to run it"


def test_boundaries():
    c = train.base_config()
    c.update(dict(total_steps=50, eval_every=20, checkpoint_every=15, checkpoint_steps=(7, 49)))
    assert _boundaries(c, 0) == [7, 15, 20, 30, 40, 45, 49, 50]
    assert _boundaries(c, 30) == [40, 45, 49, 50]
    c.eval_steps = (3, 45, 60)  # extra evals; past the end is ignored
    assert _boundaries(c, 0) == [3, 7, 15, 20, 30, 40, 45, 49, 50]
