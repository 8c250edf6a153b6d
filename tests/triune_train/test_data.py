import json
import shutil
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from triune_data.errors import DatasetError
from triune_train.data import ShardReader, TrainStream, read_split


def ids(samples):
    return [s.id for s in samples]


def test_one_epoch_visits_every_row_once_then_reshuffles(small_dataset):
    stream = TrainStream(small_dataset, split="train", seed=0)
    assert stream.num_rows == 22 and stream.rows_by_source == {"synth_det": 12, "synth_math": 10}
    first = [(s.data_source, s.id) for s in stream.next_batch(22)]
    assert len(set(first)) == 22 and stream.epoch == 1.0
    second = [(s.data_source, s.id) for s in stream.next_batch(22)]
    assert sorted(second) == sorted(first) and second != first


def test_order_depends_on_seed_only(small_dataset):
    a = ids(TrainStream(small_dataset, seed=1).next_batch(10))
    assert a == ids(TrainStream(small_dataset, seed=1).next_batch(10))
    assert a != ids(TrainStream(small_dataset, seed=2).next_batch(10))


def test_no_shuffle_is_file_order(small_dataset):
    stream = TrainStream(small_dataset, shuffle=False)
    assert [s.data_source for s in stream.next_batch(22)] == ["synth_det"] * 12 + ["synth_math"] * 10


@pytest.mark.parametrize("weights", [None, {"synth_det": 3, "synth_math": 1}])
def test_state_dict_resumes_exactly(small_dataset, weights):
    whole = TrainStream(small_dataset, seed=5, weights=weights)
    expected = [ids(whole.next_batch(7)) for _ in range(6)]
    first = TrainStream(small_dataset, seed=5, weights=weights)
    got = [ids(first.next_batch(7)) for _ in range(3)]
    state = json.loads(json.dumps(first.state_dict()))  # what a checkpoint stores
    resumed = TrainStream(small_dataset, seed=5, weights=weights)
    resumed.load_state_dict(state)
    got += [ids(resumed.next_batch(7)) for _ in range(3)]
    assert got == expected


def test_weights_set_the_mix_by_source(small_dataset):
    stream = TrainStream(small_dataset, seed=0, weights={"synth_det": 3, "synth_math": 1})
    counts = Counter(s.data_source for s in stream.next_batch(400))
    assert 260 <= counts["synth_det"] <= 340  # expected 300 (binomial sd ≈ 8.7)
    # each source still cycles through its own rows: 100 math draws = every row 10 times
    assert stream.position["synth_math"][0] == counts["synth_math"] // 10


def test_weight_zero_and_left_out_groups_are_not_sampled(small_dataset):
    stream = TrainStream(small_dataset, seed=0, weights={"synth_det": 1, "synth_math": 0})
    assert {s.data_source for s in stream.next_batch(30)} == {"synth_det"}


def test_mix_by_task(small_dataset):
    stream = TrainStream(small_dataset, seed=0, mix_by="task", weights={"math": 1})
    assert {s.task for s in stream.next_batch(15)} == {"math"}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"weights": {"nosuch": 1}},
            r"data\.mix\.weights: no data_source 'nosuch' .*it has: synth_det, synth_math",
        ),
        ({"weights": {"synth_det": 0}}, r"every weight is 0"),
        ({"split": "validation"}, r"no rows in split 'validation' \(splits: test, train\)"),
    ],
)
def test_bad_mix_or_split_is_one_line(small_dataset, kwargs, message):
    with pytest.raises(DatasetError, match=message):
        TrainStream(small_dataset, **kwargs)


def test_missing_or_unfinished_dataset(tmp_path):
    with pytest.raises(DatasetError, match="dataset directory not found"):
        TrainStream(tmp_path / "nope")
    with pytest.raises(DatasetError, match=r"no manifest\.json"):
        TrainStream(tmp_path)


def test_missing_shard_is_named(small_dataset, tmp_path):
    copy = tmp_path / "d"
    shutil.copytree(small_dataset, copy)
    shard = next((copy / "data" / "synth_math").glob("train-*.parquet"))
    shard.unlink()
    with pytest.raises(DatasetError, match=r"shard data/synth_math/train-.* is missing"):
        TrainStream(copy)


def test_resume_refuses_a_changed_dataset(small_dataset):
    state = TrainStream(small_dataset).state_dict()
    state["num_rows"] = 21
    with pytest.raises(DatasetError, match="the dataset changed since the checkpoint"):
        TrainStream(small_dataset).load_state_dict(state)


def test_reader_crosses_row_groups_and_files(tmp_path):
    paths = []
    for f in range(2):
        table = pa.table({"id": [f"{f}-{i}" for i in range(10)], "data_source": ["s"] * 10})
        paths.append(tmp_path / f"{f}.parquet")
        pq.write_table(table, paths[-1], row_group_size=3)
    reader = ShardReader(paths)
    assert reader.num_rows == 20
    order = [19, 0, 4, 10, 3, 12, 4]
    assert [r["id"] for r in reader.rows(order)] == ["1-9", "0-0", "0-4", "1-0", "0-3", "1-2", "0-4"]


def test_read_split_is_ordered_and_capped(small_dataset):
    samples = read_split(small_dataset, "train", max_per_source=3)
    assert [s.data_source for s in samples] == ["synth_det"] * 3 + ["synth_math"] * 3
    assert ids(samples[:3]) == sorted(ids(samples[:3]))
    assert samples[0].images[0].bytes  # images come along
    assert len(read_split(small_dataset, "test")) == 8
