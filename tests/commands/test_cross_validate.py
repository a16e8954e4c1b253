"""``allennlp cross-validate``: one run per fold through an ext var, resumable, mean and std of every metric."""
import json
import statistics

import pytest

from joint_ere.commands import main
from tests.conftest import tiny_config


@pytest.fixture
def fold_config(tmp_path):
    """The tiny config, whose dropout and number of epochs depend on the ext var MY_FOLD."""
    path = tmp_path / "folds.jsonnet"
    path.write_text("local base = %s;\nlocal fold = std.parseInt(std.extVar('MY_FOLD'));\n"
                    "base + {model+: {dropout: 0.1 * fold}, trainer+: {num_epochs: 1 + fold}}\n"
                    % json.dumps(tiny_config()))
    return path


def run_cv(config, out, *extra):
    return main(["cross-validate", str(config), "-s", str(out), "--folds", "3", "--fold-var", "MY_FOLD", *extra])


def test_three_folds_summarised_and_resumed(fold_config, tmp_path, capsys):
    out = tmp_path / "cv"
    assert run_cv(fold_config, out) == 0
    folds = [json.loads((out / f"fold_{i}" / "metrics.json").read_text()) for i in range(3)]
    assert [f["epoch"] for f in folds] == [0, 1, 2]  # each fold read its own index
    assert [json.loads((out / f"fold_{i}" / "config.json").read_text())["model"]["dropout"]
            for i in range(3)] == pytest.approx([0.0, 0.1, 0.2])
    summary = json.loads((out / "cv_metrics.json").read_text())
    assert summary["num_folds"] == 3 and summary["fold_var"] == "MY_FOLD"
    for key in ("best_validation_ner_macro_f1", "best_validation_re_strict_macro_f1", "best_epoch"):
        values = [f[key] for f in folds]
        assert summary["mean"][key] == pytest.approx(statistics.mean(values))
        assert summary["std"][key] == pytest.approx(statistics.stdev(values))
    assert "validation_loss" not in summary["mean"]  # the last epoch's figures are not the fold's result
    table = (out / "cv_metrics.md").read_text()
    f1 = [100 * f["best_validation_ner_macro_f1"] for f in folds]
    row = next(line for line in table.splitlines() if line.startswith("| best_validation_ner_macro_f1 |"))
    assert row.split(" | ")[1:4] == [f"{v:.2f}" for v in f1]
    assert row.endswith(f"{statistics.mean(f1):.2f} ± {statistics.stdev(f1):.2f} |")

    # Stopped during fold 1 (after its last checkpoint) and fold 2 lost: the next run resumes fold 1 from its
    # checkpoint, starts fold 2 over, and leaves fold 0 alone.
    fold0_mtime = (out / "fold_0" / "model.tar.gz").stat().st_mtime_ns
    (out / "fold_1" / "model.tar.gz").unlink()
    (out / "fold_1" / "metrics.json").unlink()
    for name in (out / "fold_2").iterdir():
        if name.is_file():
            name.unlink()
    (out / "fold_2" / "out.log").write_text("crashed\n")
    assert run_cv(fold_config, out) == 0
    assert (out / "fold_0" / "model.tar.gz").stat().st_mtime_ns == fold0_mtime
    again = [json.loads((out / f"fold_{i}" / "metrics.json").read_text()) for i in range(3)]
    for key in ("best_validation_ner_macro_f1", "best_validation_re_strict_macro_f1"):
        assert [f[key] for f in again] == pytest.approx([f[key] for f in folds])
    assert "crashed" not in (out / "fold_2" / "out.log").read_text()


def test_a_config_that_ignores_the_fold_var_is_refused(tmp_path, write_config, capsys):
    config = write_config(tiny_config())
    assert main(["cross-validate", config, "-s", str(tmp_path / "cv"), "--folds", "2"]) == 1
    assert "does not read std.extVar('ADE_FOLD')" in capsys.readouterr().err
    assert not (tmp_path / "cv").exists()


def test_folds_in_parallel_processes(fold_config, tmp_path, monkeypatch):
    """--parallel 2: the folds train in processes of their own, each with its own fold index, and give what one
    after the other gives; a finished fold is not trained again."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the tests' own thread count, on any machine
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    assert run_cv(fold_config, serial) == 0
    assert run_cv(fold_config, parallel, "--parallel", "2") == 0
    for i in range(3):
        one, other = (json.loads((out / f"fold_{i}" / "metrics.json").read_text()) for out in (serial, parallel))
        assert other["epoch"] == one["epoch"] == i  # each process read its own fold index
        assert other["best_validation_loss"] == pytest.approx(one["best_validation_loss"], rel=1e-5)
        assert (parallel / f"fold_{i}.log").exists()
    summary = json.loads((parallel / "cv_metrics.json").read_text())
    assert summary["num_folds"] == 3 and "best_validation_ner_macro_f1" in summary["mean"]
    done = (parallel / "fold_0" / "model.tar.gz").stat().st_mtime_ns
    (parallel / "fold_2" / "model.tar.gz").unlink()
    (parallel / "fold_2" / "metrics.json").unlink()
    assert run_cv(fold_config, parallel, "--parallel", "2") == 0  # fold 2 resumes alone, fold 0 is left alone
    assert (parallel / "fold_0" / "model.tar.gz").stat().st_mtime_ns == done
    assert (parallel / "fold_2" / "model.tar.gz").exists()


def test_a_failed_parallel_fold_is_named(tmp_path, capsys):
    path = tmp_path / "folds.jsonnet"
    path.write_text("local base = %s;\nlocal fold = std.parseInt(std.extVar('MY_FOLD'));\n"
                    "base + {train_data_path: if fold == 1 then 'no/such/train.json' else base.train_data_path}\n"
                    % json.dumps(tiny_config(epochs=1)))
    out = tmp_path / "cv"
    assert run_cv(path, out, "--parallel", "2") == 1
    err = capsys.readouterr().err
    assert "fold 1 failed" in err and "data file not found" in err and "fold_1.log" in err
    assert not (out / "cv_metrics.json").exists()


def test_compare_gives_the_paired_differences():
    from joint_ere.commands.cross_validate import compare, comparison_table

    ours = {"num_folds": 3, "mean": {"best_validation_re_macro_f1": 0.8, "best_epoch": 3.0, "best_validation_loss": 1},
            "folds": [{"best_validation_re_macro_f1": v, "best_epoch": e, "best_validation_loss": 1}
                      for v, e in ((0.80, 2), (0.85, 3), (0.75, 4))]}
    theirs = {"num_folds": 3, "mean": {"best_validation_re_macro_f1": 0.8, "best_epoch": 3.0},
              "folds": [{"best_validation_re_macro_f1": v, "best_epoch": e}
                        for v, e in ((0.79, 2), (0.86, 1), (0.73, 4))]}
    comparison = compare(ours, theirs)
    row = comparison["metrics"]["best_validation_re_macro_f1"]
    assert row["differences"] == pytest.approx([0.01, -0.01, 0.02])
    assert row["mean"] == pytest.approx(0.02 / 3)
    assert row["std"] == pytest.approx(statistics.stdev([0.01, -0.01, 0.02]))
    assert (row["higher"], row["lower"]) == (2, 1)
    assert comparison["metrics"]["best_epoch"]["differences"] == [0, 2, 0]
    assert comparison["metrics"]["best_epoch"]["higher"] == 1 and comparison["metrics"]["best_epoch"]["lower"] == 0
    assert "best_validation_loss" not in comparison["metrics"]  # not in both, and not an F1
    table = comparison_table(comparison)
    assert "| best_validation_re_macro_f1 | +1.00 | -1.00 | +2.00 | +0.67 ± 1.53 | 2 / 1 |" in table


def test_compare_to_another_run(fold_config, tmp_path, capsys):
    base, other = tmp_path / "base", tmp_path / "other"
    assert run_cv(fold_config, base) == 0
    # a missing or mismatched baseline is refused before anything trains
    assert run_cv(fold_config, other, "--compare-to", str(tmp_path / "nowhere")) == 1
    assert "nowhere/cv_metrics.json does not exist" in capsys.readouterr().err
    assert not other.exists()
    assert main(["cross-validate", str(fold_config), "-s", str(other), "--folds", "2", "--fold-var", "MY_FOLD",
                 "--compare-to", str(base)]) == 1
    assert "has 3 folds, this run 2" in capsys.readouterr().err

    seeds = json.dumps({"random_seed": 5, "numpy_seed": 5, "pytorch_seed": 5})
    assert run_cv(fold_config, other, "-o", seeds, "--compare-to", str(base)) == 0
    comparison = json.loads((other / "cv_comparison.json").read_text())
    assert comparison["baseline"] == str(base)
    for key in ("best_validation_ner_macro_f1", "best_validation_re_strict_micro_f1", "training_seconds"):
        expected = [json.loads((other / f"fold_{i}" / "metrics.json").read_text())[key]
                    - json.loads((base / f"fold_{i}" / "metrics.json").read_text())[key] for i in range(3)]
        assert comparison["metrics"][key]["differences"] == pytest.approx(expected)
    assert f"Against {base}" in (other / "cv_metrics.md").read_text()
