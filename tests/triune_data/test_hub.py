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


def _http_error(cls_name: str, status: int) -> Exception:
    """The Hub's own HTTP error, as huggingface_hub raises it (it carries the response)."""
    import importlib

    import huggingface_hub.errors as hf

    http = importlib.import_module(hf.HfHubHTTPError.__mro__[1].__module__)  # the Hub's httpx
    request = http.Request("POST", "https://huggingface.co/api/repos/create")
    return getattr(hf, cls_name)(f"{status} Client Error", response=http.Response(status, request=request))


class FailingApi(FakeApi):
    def __init__(self, exc: Exception):
        super().__init__()
        self.exc = exc

    def create_repo(self, repo_id, **kw):
        raise self.exc


@pytest.mark.parametrize(
    ("exc", "fragment"),
    [
        (
            lambda: _http_error("HfHubHTTPError", 401),
            r"datasets/org/name: not allowed \(HTTP 401\): HF_TOKEN",
        ),
        (lambda: _http_error("HfHubHTTPError", 403), r"not allowed \(HTTP 403\)"),
        (lambda: _http_error("RepositoryNotFoundError", 404), r"datasets/org/name: not found \(HTTP 404\)"),
        (lambda: _http_error("HfHubHTTPError", 500), r"the Hub answered HTTP 500"),
        (
            lambda: __import__("huggingface_hub.errors").errors.OfflineModeIsEnabled("offline"),
            "offline mode is on",
        ),
        (
            lambda: __import__("huggingface_hub.errors").errors.LocalTokenNotFoundError("no token"),
            "set HF_TOKEN",
        ),
        (lambda: ConnectionError("[Errno -3] Temporary failure in name resolution"), "cannot reach the Hub"),
    ],
)
def test_hub_failures_are_one_line_hub_errors(small_dataset, monkeypatch, exc, fragment):
    from triune_data.errors import HubError

    monkeypatch.setenv("HF_TOKEN", "hf_secret_token")
    with pytest.raises(HubError, match=fragment) as info:
        push(small_dataset, "org/name", api=FailingApi(exc()))
    assert "\n" not in str(info.value) and "hf_secret_token" not in str(info.value)


@pytest.mark.parametrize("repo_id", ["bad id!", "a/b/c", "-org/name", ""])
def test_a_bad_repo_id_is_refused_before_anything_even_in_a_dry_run(small_dataset, repo_id):
    from triune_data.errors import HubError

    api = FakeApi()
    with pytest.raises(HubError, match="bad repo id"):
        push(small_dataset, repo_id, dry_run=True, api=api)
    assert api.calls == []


def test_a_bug_in_our_call_is_not_dressed_as_a_hub_error(small_dataset):
    with pytest.raises(TypeError):
        push(small_dataset, "org/name", api=FailingApi(TypeError("unexpected keyword argument")))
