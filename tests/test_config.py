import json
import sys
import textwrap

import pytest

from joint_ere.commands import main
from joint_ere.common import ConfigurationError, load_config
from joint_ere.commands.train import train_model
from tests.conftest import ROOT, needs_shared_data, tiny_config


def train_error(config, tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    code = main(["train", str(path), "-s", str(tmp_path / "run")])
    assert code == 1
    assert not (tmp_path / "run").exists(), "nothing may be written on a config error"
    return capsys.readouterr().err


def test_unknown_key_names_its_path(tmp_path, capsys):
    config = tiny_config()
    config["model"]["shared_encoder"]["hidden_sizee"] = 3
    err = train_error(config, tmp_path, capsys)
    assert "model.shared_encoder.hidden_sizee" in err


def test_unknown_top_level_key(tmp_path, capsys):
    config = tiny_config()
    config["trainerr"] = {}
    assert "trainerr" in train_error(config, tmp_path, capsys)


def test_missing_required_key_names_its_path(tmp_path, capsys):
    config = tiny_config()
    del config["model"]["re_encoder"]
    assert "model.re_encoder: missing required key" in train_error(config, tmp_path, capsys)


def test_nested_missing_key(tmp_path, capsys):
    config = tiny_config()
    del config["model"]["text_field_embedder"]["token_embedders"]["tokens"]["embedding_dim"]
    assert "model.text_field_embedder.token_embedders.tokens.embedding_dim" in train_error(config, tmp_path, capsys)


def test_wrong_type_names_its_path(tmp_path, capsys):
    config = tiny_config()
    config["trainer"]["num_epochs"] = "many"
    err = train_error(config, tmp_path, capsys)
    assert "trainer.num_epochs" in err


def test_unknown_registered_name(tmp_path, capsys):
    config = tiny_config()
    config["model"]["ner_encoder"] = {"type": "no_such_encoder"}
    assert "model.ner_encoder" in train_error(config, tmp_path, capsys)


def test_dimension_mismatch_names_keys(tmp_path, capsys):
    config = tiny_config()
    config["model"]["re_encoder"]["input_size"] = 7
    err = train_error(config, tmp_path, capsys)
    assert "model.re_encoder" in err and "24" in err


def test_missing_data_file(tmp_path, capsys):
    config = tiny_config(train=tmp_path / "absent.json")
    err = train_error(config, tmp_path, capsys)
    assert "absent.json" in err and "not found" in err


def test_overrides_and_ext_vars(tmp_path, monkeypatch):
    path = tmp_path / "c.jsonnet"
    path.write_text("{a: std.extVar('MY_SIZE'), b: {c: 1, d: 2}}")
    monkeypatch.setenv("MY_SIZE", "7")
    params = load_config(str(path), '{"b.c": 5}')
    assert params.as_dict() == {"a": "7", "b": {"c": 5, "d": 2}}


def test_nested_overrides_merge_key_by_key(tmp_path):
    """AllenNLP's -o: objects merge into the config key by key; lists and scalars replace; dotted keys and
    nested objects can be mixed; a list element is addressed by its index."""
    path = tmp_path / "c.jsonnet"
    path.write_text("{a: {b: {c: 1, d: 2}, e: [1, {f: 3, g: 4}], h: 'x'}, i: [1, 2]}")
    params = load_config(str(path), '{"a": {"b": {"c": 5}, "e.1.f": 6, "h": {"j": 7}}, "i": [3], "k": 8}')
    assert params.as_dict() == {"a": {"b": {"c": 5, "d": 2}, "e": [1, {"f": 6, "g": 4}], "h": {"j": 7}},
                                "i": [3], "k": 8}
    params = load_config(str(path), '{"a.b": {"d": 9}, "a": {"b.c": 0}}')
    assert params.as_dict()["a"]["b"] == {"c": 0, "d": 9}


def test_train_with_nested_overrides_keeps_the_other_keys(tmp_path, write_config):
    """-o '{"trainer": {"num_epochs": 1}}' must not drop the config's optimizer, metric, scheduler; config.json in
    the serialization directory is the merged config."""
    config = tiny_config(epochs=3, dropout=0.1)
    config["trainer"]["learning_rate_scheduler"] = {"type": "reduce_on_plateau", "factor": 0.5, "patience": 1}
    config["trainer"]["patience"] = 4
    path = write_config(config)
    overrides = {"trainer": {"num_epochs": 1}, "model": {"dropout": 0.3, "re_encoder": {"hidden_size": 10}}}
    assert main(["train", path, "-s", str(tmp_path / "run"), "-o", json.dumps(overrides)]) == 0
    written = json.loads((tmp_path / "run" / "config.json").read_text())
    expected = json.loads(json.dumps(config))
    expected["trainer"]["num_epochs"] = 1
    expected["model"]["dropout"] = 0.3
    expected["model"]["re_encoder"]["hidden_size"] = 10
    assert written == expected
    assert written["model"]["type"] == "multi_head_selection" and written["trainer"]["optimizer"]["lr"] == 0.01
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["epoch"] == 0  # one epoch ran


def test_evaluate_overrides_merge_into_the_archived_config(tmp_path, write_config, capsys):
    path = write_config(tiny_config(epochs=1))
    assert main(["train", path, "-s", str(tmp_path / "run")]) == 0
    archive = str(tmp_path / "run" / "model.tar.gz")
    from joint_ere.archival import load_archive

    loaded = load_archive(archive, overrides='{"model": {"relation_threshold": 0.9}}')
    assert loaded.model.relation_threshold == 0.9 and loaded.config["model"]["type"] == "multi_head_selection"
    assert load_archive(archive, overrides={"model.relation_threshold": 0.7}).model.relation_threshold == 0.7


def test_bad_jsonnet_is_a_configuration_error(tmp_path):
    path = tmp_path / "c.jsonnet"
    path.write_text("{a: }")
    with pytest.raises(ConfigurationError, match="c.jsonnet"):
        load_config(str(path))


def test_include_package_registers_user_classes(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_ext.py").write_text(textwrap.dedent("""
        from joint_ere.data import DatasetReader, SpertJsonReader

        @DatasetReader.register("shouting_reader")
        class ShoutingReader(SpertJsonReader):
            pass
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    config = tiny_config(epochs=1)
    config["dataset_reader"]["type"] = "shouting_reader"
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert main(["train", str(path), "-s", str(tmp_path / "run"), "--dry-run"]) == 1  # not imported: unknown
    assert main(["train", str(path), "-s", str(tmp_path / "run"), "--dry-run", "--include-package", "my_ext"]) == 0
    sys.modules.pop("my_ext", None)


@needs_shared_data
@pytest.mark.parametrize("config, sentences", [("conll04.jsonnet", 922), ("ade.jsonnet", 3845),
                                               ("conll04_all_shared.jsonnet", 922)])
def test_shipped_configs_build(config, sentences, capsys, monkeypatch):
    monkeypatch.setenv("GLOVE_50D", str(ROOT / "fixtures" / "data" / "glove_tiny.10d.txt"))
    params = load_config(str(ROOT / "training_config" / config))
    assert "test" not in json.dumps(params.get("train_data_path"))
    assert not params.get("evaluate_on_test", False)
    assert train_model(params, "/nonexistent/never-written", dry_run=True) is None
    stats = json.loads(capsys.readouterr().out)
    assert stats["datasets"][0]["sentences"] == sentences


def test_ade_fold_is_selectable(monkeypatch):
    monkeypatch.setenv("JOINT_ERE_DATA", "/data")
    monkeypatch.setenv("ADE_FOLD", "7")
    params = load_config(str(ROOT / "training_config" / "ade.jsonnet"))
    assert params["train_data_path"] == "/data/ade/ade_split_7_train.json"
    assert params["validation_data_path"] == "/data/ade/ade_split_7_test.json"
    # measured over 20 fold-and-seed runs, adversarial training bought nothing for 1.6x the time (RESULTS.md)
    assert "adversarial" not in params["trainer"]
    assert params["model"]["ner_decoder"]["per_type"] is True


def test_configs_fall_back_to_public_urls(monkeypatch):
    monkeypatch.delenv("JOINT_ERE_DATA", raising=False)
    monkeypatch.delenv("GLOVE_50D", raising=False)
    params = load_config(str(ROOT / "training_config" / "conll04.jsonnet"))
    assert params["train_data_path"].startswith("http://lavis.cs.hs-rm.de/storage/spert/public/datasets/conll04/")
    embedder = params.as_dict()["model"]["text_field_embedder"]["token_embedders"]["tokens"]
    assert embedder["pretrained_file"].startswith("https://")


def test_quickstart_config_builds(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    params = load_config(str(ROOT / "training_config" / "quickstart.jsonnet"))
    assert train_model(params, "/nonexistent/never-written", dry_run=True) is None
    assert json.loads(capsys.readouterr().out)["datasets"][0]["sentences"] == 8
