"""The `mechjax` command: list, run (with overrides and errors), report."""

import glob
import json
import os
import subprocess
import sys

import pytest

from mechjax.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "configs/demo/repeat.py")


def test_list(capsys):
    assert main(["list", "--root", ROOT]) == 0
    out = capsys.readouterr().out
    assert "configs/demo/repeat.py" in out
    assert "Demo: attention-only transformer learns to continue repeated random tokens" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--config.lrr=0.1"], "error: unknown config key 'lrr' (did you mean 'lr'?). Valid keys:"),
        (["--config.total_steps=ten"], "error: config.total_steps expects an int"),
        (["--config.task.d_vocab", "1.5"], "error: config.task.d_vocab expects an int"),
        (["--config.optimizer=adagrad"], "valid optimizers are adam, adamw, sgd"),
    ],
    ids=["unknown_key", "wrong_type", "wrong_type_nested_space_form", "bad_value"],
)
def test_bad_config_fails_before_running(argv, message, capsys, tmp_path):
    rc = main(["run", DEMO + ":runlocal", "--workdir", str(tmp_path / "w"), *argv])
    err = capsys.readouterr().err
    assert rc == 1 and message in err
    assert not (tmp_path / "w").exists()  # nothing ran


def test_bad_arg_and_unwritable_workdir(capsys, tmp_path):
    assert main(["run", DEMO + ":runlocal,seed=2", "--workdir", str(tmp_path)]) == 1
    assert "config arg 'seed' is not known (did you mean 'seeds'?)" in capsys.readouterr().err
    (tmp_path / "f").write_text("")
    assert main(["run", DEMO + ":runlocal", "--workdir", str(tmp_path / "f" / "w")]) == 1
    assert "error: cannot write to workdir" in capsys.readouterr().err


def test_module_entry_point_prints_error_without_traceback(tmp_path):
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "mechjax",
            "run",
            DEMO + ":runlocal",
            "--workdir",
            str(tmp_path),
            "--config.lrr=1",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert p.returncode == 1
    assert "unknown config key 'lrr'" in p.stderr and "Traceback" not in p.stderr


FEWSHOT = os.path.join(ROOT, "configs/induction_heads/fewshot.py")


def _mechjax(*argv, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "mechjax", *argv], capture_output=True, text=True, cwd=cwd,
        timeout=300,
    )  # fmt: skip


def test_bad_clamp_spec_is_one_error_line_without_traceback(tmp_path):
    """A ValueError raised while building the task (here by the clamp parser) is bad input."""
    work = tmp_path / "w"
    p = _mechjax(
        "run", FEWSHOT + ":runlocal", "--workdir", str(work), "--config.task.clamps=bogus 1:3"
    )
    assert p.returncode == 1, p.stderr
    assert p.stderr.startswith("error: ") and "'bogus'" in p.stderr  # the clamp parser's message
    assert p.stderr.count("\n") == 1  # one line
    assert "Traceback" not in p.stderr and not work.exists()


def test_bad_task_option_fails_before_running(capsys, tmp_path):
    rc = main(["run", FEWSHOT + ":runlocal", "--workdir", str(tmp_path / "w"),
               "--config.task.kind=bogus"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 1
    assert err == "error: config.task.kind='bogus'; valid kinds: 'fewshot', 'tokens'\n"
    assert not (tmp_path / "w").exists()


def _experiment(root, body: str):
    """A one-config experiment `broken` under `root` whose `build(config)` runs `body`."""
    (root / "configs" / "broken").mkdir(parents=True)
    (root / "experiments" / "broken").mkdir(parents=True)
    (root / "configs" / "broken" / "c.py").write_text(
        "from mechjax.train import base_config\n\n"
        "def get_config(arg=None):\n"
        "    c = base_config()\n"
        "    c.experiment = 'broken'\n"
        "    return c\n"
    )
    (root / "experiments" / "broken" / "task.py").write_text(f"def build(config):\n    {body}\n")
    return str(root / "configs" / "broken" / "c.py")


def test_value_error_from_a_task_build_is_printed_cleanly(tmp_path):
    cfg = _experiment(tmp_path / "repo", "raise ValueError('n_things=3 must be even')")
    p = _mechjax("run", cfg, "--workdir", str(tmp_path / "w"), cwd=tmp_path)
    assert p.returncode == 1
    assert p.stderr == "error: n_things=3 must be even\n"


def test_bug_in_a_task_build_keeps_its_traceback(tmp_path):
    """TypeError / AttributeError are bugs, not bad input: the traceback stays."""
    cfg = _experiment(tmp_path / "repo", "return config.task.no_such_key.foo")
    p = _mechjax("run", cfg, "--workdir", str(tmp_path / "w"), cwd=tmp_path)
    assert p.returncode == 1
    assert "Traceback" in p.stderr and "AttributeError" in p.stderr
    cfg = _experiment(tmp_path / "repo2", "return len(3)")
    p = _mechjax("run", cfg, "--workdir", str(tmp_path / "w2"), cwd=tmp_path)
    assert "Traceback" in p.stderr and "TypeError" in p.stderr


def _configs():
    out = []
    for path in sorted(glob.glob(os.path.join(ROOT, "configs", "*", "*.py"))):
        if os.path.basename(path).startswith("_"):
            continue
        rel = os.path.relpath(path, ROOT)
        marks = () if rel == "configs/demo/repeat.py" else (pytest.mark.slow,)
        out.append(pytest.param(rel, id=rel, marks=marks))
    return out


@pytest.mark.parametrize("config", _configs())
def test_runlocal_writes_outputs_and_report_rebuilds(config, tmp_path, capsys):
    work = str(tmp_path / "run")
    assert main(["run", os.path.join(ROOT, config) + ":runlocal", "--workdir", work]) == 0
    for name in ("metrics.jsonl", "summary.json", "report.md", "config.json", "run.json"):
        assert os.path.getsize(os.path.join(work, name)) > 0, name
    with open(os.path.join(work, "summary.json")) as f:
        summary = json.load(f)
    with open(os.path.join(work, "config.json")) as f:
        assert summary["step"] == json.load(f)["total_steps"]
    report = open(os.path.join(work, "report.md")).read()
    os.remove(os.path.join(work, "report.md"))
    os.remove(os.path.join(work, "summary.json"))
    assert main(["report", work]) == 0
    assert open(os.path.join(work, "report.md")).read() == report
    with open(os.path.join(work, "summary.json")) as f:
        assert json.load(f) == summary
    assert main(["report", str(tmp_path / "missing")]) == 1


def test_branch_from_continues_another_runs_checkpoint_with_a_new_config(tmp_path, capsys):
    """`--branch-from RUN:STEP`: the new run starts at RUN's step (its metrics up to there are
    RUN's), trains on with its own config, and refuses a used workdir, a missing step and a
    different model."""
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    assert main(["run", DEMO + ":runlocal", "--workdir", src, "--config.total_steps=40"]) == 0
    run = ["run", DEMO + ":runlocal", "--workdir", dst, "--config.total_steps=60"]
    assert main([*run, "--config.lr=0.01", "--branch-from", f"{src}:20"]) == 0
    assert f"branched {dst} from {src} at step 20" in capsys.readouterr().err

    def records(d):
        with open(os.path.join(d, "metrics.jsonl")) as f:
            return [json.loads(line) for line in f]

    a, b = records(src), records(dst)
    assert [r for r in b if r["step"] <= 20] == [r for r in a if r["step"] <= 20]
    assert max(r["step"] for r in b) == 60
    # after step 20 the branch trains with lr 0.01, so its losses leave the source's
    later = {(r["step"], r["split"]): r for r in a if r["step"] > 20}
    moved = [r for r in b if (r["step"], r["split"]) in later and "loss" in r]
    assert moved and any(r["loss"] != later[(r["step"], r["split"])]["loss"] for r in moved)
    with open(os.path.join(dst, "branch.json")) as f:
        assert json.load(f) == {"source": os.path.abspath(src), "step": 20}
    capsys.readouterr()
    assert main([*run, "--branch-from", src]) == 1
    assert "already has checkpoints" in capsys.readouterr().err
    assert main(["run", DEMO + ":runlocal", "--workdir", str(tmp_path / "x"),
                 "--branch-from", f"{src}:7"]) == 1  # fmt: skip
    assert "no such checkpoint; it has [20, 40]" in capsys.readouterr().err
    assert main(["run", DEMO + ":runlocal", "--workdir", str(tmp_path / "y"),
                 "--config.task.d_model=48", "--branch-from", src]) == 1  # fmt: skip
    assert "its model differs from this config's in ['d_model']" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "y" / "checkpoints")
