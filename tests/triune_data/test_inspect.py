import json
import shutil

from triune_data.inspect import inspect_dataset


def test_inspect_reports_per_source(small_dataset):
    info = inspect_dataset(small_dataset)
    assert info["problems"] == []
    det = info["sources"]["synth_det"]
    assert det["read"] == det["kept"] + det["rejected"] == 12
    assert det["tasks"] == {"detection": det["kept"]}
    assert det["verifiers"] == {"detection": det["kept"]}
    assert det["boxes"]["total"] >= det["kept"]  # every detection sample has at least one box
    assert det["image_width"] == {"min": 160.0, "median": 160.0, "max": 160.0}
    count = info["sources"]["synth_count"]
    assert count["rows_by_split"] == {"test": 8}
    assert info["rows_by_split"] == {"test": 8, "train": 22}


def test_inspect_notices_a_ledger_that_does_not_add_up(small_dataset, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(small_dataset, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["sources"]["synth_math"]["read"] += 1
    (copy / "manifest.json").write_text(json.dumps(manifest))
    problems = inspect_dataset(copy)["problems"]
    assert problems == ["synth_math: read 11 != kept 10 + rejected 0"]
