"""EasyR1 rows: a string prompt, a top-level answer, the reward spec where EasyR1's reward function looks."""

import json

import pyarrow.parquet as pq
import pytest

from triune_data.errors import DatasetError
from triune_data.export import export_dataset
from triune_data.export.easyr1 import easyr1_row
from triune_data.schema import row_to_sample
from triune_data.types import Message


@pytest.fixture(scope="module")
def rows(small_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("easyr1")
    export_dataset(small_dataset, out, fmt="easyr1")
    return pq.read_table(out / "train.parquet").to_pylist() + pq.read_table(out / "test.parquet").to_pylist()


def test_rows_are_what_easyr1_reads(rows, small_dataset):
    stored = {
        r["id"]: r for p in (small_dataset / "data").glob("*/*.parquet") for r in pq.read_table(p).to_pylist()
    }
    for row in rows:
        src = stored[row["extra_info"]["id"]]
        assert row["prompt"] == src["prompt"][0]["content"] and row["prompt"].count("<image>") == len(
            row["images"]
        )
        assert row["answer"] == src["answer"] and isinstance(row["answer"], str)
        assert [i["bytes"] for i in row["images"]] == [i["bytes"] for i in src["images"]]
        assert row["triune_reward"] == row["extra_info"]["triune_reward"]
        assert json.loads(row["triune_reward"])["split"] == src["split"]


@pytest.mark.parametrize(
    "prompt",
    [
        [Message("system", "be brief"), Message("user", "<image>how many?")],
        [Message("user", "<image>a"), Message("user", "b")],
    ],
)
def test_a_prompt_that_is_not_one_user_turn_is_refused_by_name(rows, small_dataset, prompt):
    src = pq.read_table(next((small_dataset / "data" / "synth_math").glob("*.parquet"))).to_pylist()[0]
    sample = row_to_sample(src)
    sample.prompt = prompt
    with pytest.raises(DatasetError, match=f"^{sample.id}: EasyR1 reads a prompt as one user turn"):
        easyr1_row(sample, 0)
