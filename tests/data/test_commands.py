"""`lstm-ray datasets` lists the bundled sets; `lstm-ray validate` reports what the data layer found."""

from __future__ import annotations

import yaml

from lstm_ray.cli import main
from lstm_ray.data.builtin import BUILTIN_DATASETS


def test_datasets_lists_every_bundled_set_with_task_size_source_and_licence(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name, dataset in BUILTIN_DATASETS.items():
        line = next(line for line in out.splitlines() if line.startswith(f"builtin:{name} "))
        assert dataset.task in line and " KB" in line and f"licence {dataset.licence}" in line
        assert dataset.source in out


def test_validate_reports_classes_for_a_classify_config(tmp_path, tiny_raw, capsys):
    tiny_raw["data"] = {"source": "builtin:japanese_vowels", "task": "classify"}
    tiny_raw["search"] |= {"metric": "val_accuracy", "mode": "max"}
    path = tmp_path / "vowels.yaml"
    path.write_text(yaml.safe_dump(tiny_raw))
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: tiny: builtin:japanese_vowels, sequences train/val/test 234/36/370, 12 inputs")
    assert "classes in train (1: 26, 2: 26" in out


def test_validate_refuses_a_searched_preprocessing_key(tmp_path, tiny_raw, capsys):
    tiny_raw["search"]["space"] = {"data.val_fraction": {"choice": [0.1, 0.2]}}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(tiny_raw))
    assert main(["validate", str(path)]) == 2
    assert "search.space.data.val_fraction: data.val_fraction is fixed for the whole sweep" in capsys.readouterr().err
