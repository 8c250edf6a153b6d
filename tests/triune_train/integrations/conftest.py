import pyarrow.parquet as pq
import pytest

from triune_data.export import export_dataset
from triune_train.integrations import common


@pytest.fixture(autouse=True)
def fresh_state(monkeypatch):
    """Each test starts with no cached settings, clocks or counts, and no TRIUNE_* variables."""
    for name in list(__import__("os").environ):
        if name.startswith("TRIUNE_"):
            monkeypatch.delenv(name)
    common.reset()
    yield
    common.reset()


@pytest.fixture(scope="session")
def exported(small_dataset, tmp_path_factory):
    """The small dataset exported for verl and EasyR1: {format: rows of train then test}."""
    out = {}
    for fmt in ("verl", "easyr1"):
        d = tmp_path_factory.mktemp(fmt)
        export_dataset(small_dataset, d, fmt=fmt)
        out[fmt] = [
            r for split in ("train", "test") for r in pq.read_table(d / f"{split}.parquet").to_pylist()
        ]
    return out
