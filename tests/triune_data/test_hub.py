import shutil

import pytest

from triune_data.errors import DatasetError
from triune_data.hub import push


class FakeApi:
    def __init__(self):
        self.calls = []

    def create_repo(self, repo_id, **kw):
        self.calls.append(("create_repo", repo_id, kw))

    def upload_folder(self, **kw):
        self.calls.append(("upload_folder", kw["repo_id"], kw))


def test_push_is_one_upload_of_the_layout(small_dataset, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_token")
    api = FakeApi()
    files = push(small_dataset, "org/name", private=True, api=api)
    assert [c[0] for c in api.calls] == ["create_repo", "upload_folder"]
    assert api.calls[0][2] == {"repo_type": "dataset", "private": True, "exist_ok": True}
    upload = api.calls[1][2]
    assert upload["repo_type"] == "dataset" and upload["folder_path"] == str(small_dataset)
    names = [f for f, _ in files]
    assert "README.md" in names and "manifest.json" in names
    assert any(n.startswith("data/synth_det/train-") for n in names)
    assert not any(".work" in n for n in names)


def test_dry_run_lists_without_uploading(small_dataset):
    api = FakeApi()
    files = push(small_dataset, "org/name", dry_run=True, api=api)
    assert api.calls == [] and files


def test_push_refuses_a_dataset_that_differs_from_its_manifest(small_dataset, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(small_dataset, copy)
    shard = next((copy / "data" / "synth_det").glob("*.parquet"))
    shard.write_bytes(shard.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(DatasetError, match="content differs from the manifest"):
        push(copy, "org/name", api=FakeApi())


def test_push_refuses_an_unfinished_directory(tmp_path):
    with pytest.raises(DatasetError, match=r"no manifest\.json"):
        push(tmp_path, "org/name", api=FakeApi())
