from __future__ import annotations

from pathlib import Path

import pytest

from lstmcast.config import Config, config_from_dict, load_config, reference, reference_markdown
from lstmcast.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, text), overrides)
    return str(exc.value)


def test_unknown_key_names_path_and_closest_valid_name(tmp_path):
    assert "unknown key train.lrate — did you mean train.lr?" in error_of(tmp_path, "train: {lrate: 0.1}")


def test_key_in_the_wrong_section_points_to_the_right_one(tmp_path):
    assert "did you mean window.lookback?" in error_of(tmp_path, "train: {lookback: 10}")


def test_unknown_section_lists_valid_sections(tmp_path):
    message = error_of(tmp_path, "trian: {lr: 0.1}")
    assert "unknown key trian" in message and "did you mean train?" in message


def test_out_of_range_names_key_value_and_range(tmp_path):
    message = error_of(tmp_path, "train: {lr: -1}")
    assert "train.lr = -1" in message and "> 0" in message and "≤ 10" in message


def test_wrong_type_names_key_and_value(tmp_path):
    message = error_of(tmp_path, "train: {epochs: ten}")
    assert "train.epochs must be a whole number" in message and "'ten'" in message


def test_bad_choice_suggests_the_closest(tmp_path):
    assert "did you mean huber?" in error_of(tmp_path, "train: {loss: hubber}")


def test_yaml_syntax_error_names_the_line(tmp_path):
    assert "line 3" in error_of(tmp_path, "train:\n  lr: 0.1\n  epochs: [1, 2\n")


def test_scientific_notation_is_a_float(tmp_path):
    # YAML 1.1 (PyYAML) reads 1e-3 as a string; users write it anyway.
    assert load_config(write(tmp_path, "train: {lr: 1e-3}")).train.lr == pytest.approx(0.001)


def test_single_target_becomes_a_list_and_defaults_fill_the_rest(tmp_path):
    cfg = load_config(write(tmp_path, "data: {target: load}"))
    assert cfg.data.target == ["load"]
    assert cfg.window == Config().window


def test_relative_paths_resolve_against_the_config_folder(tmp_path, monkeypatch):
    folder = tmp_path / "jobs"
    folder.mkdir()
    (folder / "c.yaml").write_text("data: {path: ../data/x.csv}\noutput: {dir: out}\n")
    monkeypatch.chdir("/")
    cfg = load_config(folder / "c.yaml")
    assert cfg.data.path == str(tmp_path / "data" / "x.csv")
    assert cfg.output.dir == str(folder / "out")


def test_set_overrides_parse_yaml_and_paths_resolve_against_cwd(tmp_path, monkeypatch):
    path = write(tmp_path, "train: {lr: 0.1}")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    cfg = load_config(path, ["train.lr=0.002", "data.target=[a, b]", "output.dir=here", "data.split.val=0.2"])
    assert cfg.train.lr == 0.002
    assert cfg.data.target == ["a", "b"]
    assert cfg.output.dir == str(work / "here")
    assert cfg.data.split.val == 0.2


def test_set_with_unknown_key_is_reported_like_the_file(tmp_path):
    assert "did you mean train.epochs?" in error_of(tmp_path, "", ("train.epoch=3",))


def test_lookback_must_be_a_multiple_of_patch(tmp_path):
    message = error_of(tmp_path, "window: {lookback: 100}\nmodel: {patch: 24}")
    assert "window.lookback (100)" in message and "model.patch (24)" in message


def test_resolved_config_round_trips_through_a_plain_dict(tmp_path):
    cfg = load_config(write(tmp_path, "data: {target: [a], path: x.csv}\ntrain: {epochs: 3}"))
    assert config_from_dict(cfg.to_dict()) == cfg


def test_every_knob_has_a_doc_and_is_in_the_manual():
    for key, _type, _default, _valid, doc in reference():
        assert doc, key
    # The manual's table is generated from the declarations: `python docs/generate.py` when a knob changes.
    assert reference_markdown() in (ROOT / "docs" / "config.md").read_text(), "docs/config.md is stale"
