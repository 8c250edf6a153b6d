"""`write_report` on a synthetic run: every source gets its plots and table, offline, escaped."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from triune_train.metrics import MetricsError, MetricsLogger, read_metrics
from triune_train.report import PANELS, _by_magnitude, _Series, write_report

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report_testkit import SOURCES, make_synthetic_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def synthetic_report(tmp_path_factory) -> tuple[Path, str]:
    run = make_synthetic_run(tmp_path_factory.mktemp("run") / "RUN", steps=20, groups=4, n=4)
    path = write_report(run)
    return run, path.read_text()


def test_report_has_every_source_table_and_plot(synthetic_report):
    run, page = synthetic_report
    assert (run / "report.html").is_file()
    for source in (*SOURCES, "all sources"):
        assert f">{source}</h2>" in page
    images = re.findall(r'<img src="([^"]+)"', page)
    assert images, "no plots"
    for src in images:
        data = (run / src).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5_000
    stems = {Path(src).name for src in images}
    for source in SOURCES:  # reward, accuracy, length, reflection, failures for every source
        for panel in ("reward", "accuracy", "length", "reflection", "failures"):
            assert f"{source}__{panel}.png" in stems
    assert "v3det_detection__iou.png" in stems and "mmk12_math__iou.png" not in stems  # τ only where logged
    assert any(s.startswith("run__actor") for s in stems) and any(
        s.startswith("run__timing_s") for s in stems
    )
    assert {p.name for p in (run / "report").glob("*.png")} == stems  # nothing stray, nothing missing


def test_report_is_offline(synthetic_report):
    _, page = synthetic_report
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    assert "<script" not in page


def test_summary_table_matches_metrics(synthetic_report):
    run, page = synthetic_report
    rows = read_metrics(run)
    train = [r["train/mmk12_math/reward"] for r in rows if "train/mmk12_math/reward" in r]
    test = [r["test/mmk12_math/reward"] for r in rows if "test/mmk12_math/reward" in r]
    section = page.split(">mmk12_math</h2>")[1].split("<h2")[0]
    row = re.search(r"<tr><td>reward</td>(.*?)</tr>", section)
    assert row is not None
    cells = re.findall(r"<td>([^<]*)</td>", row.group(1))
    expected = [train[0], train[-1], max(train), test[0], test[-1], max(test)]
    assert cells == [f"{v:.3f}" for v in expected]
    err = re.search(r"<tr><td>error_rate</td>(.*?)</tr>", section)
    assert err is not None  # "best" of a rate is its minimum
    errors = [r["train/mmk12_math/error_rate"] for r in rows if "train/mmk12_math/error_rate" in r]
    assert re.findall(r"<td>([^<]*)</td>", err.group(1))[2] == f"{min(errors):.3f}"


def test_samples_are_shown_escaped(synthetic_report):
    _, page = synthetic_report
    assert "<summary>step 20 · reward" in page
    assert "&lt;answer&gt;" in page  # completion text is data, not markup
    assert "read: &lt;stop&gt;" in page  # what the verifier read, escaped too
    assert (
        "read: [{&quot;label&quot;: &quot;cup&quot;, &quot;bbox&quot;: [10.0, 20.0, 110.0, 140.0]}]" in page
    )


def test_hostile_source_names_are_escaped_and_files_are_safe(tmp_path):
    with MetricsLogger(tmp_path, tensorboard=False) as log:
        for step in (1, 2):
            log.log(
                step,
                {
                    "train/<img src=x onerror=alert(1)>/count": 4.0,
                    "train/<img src=x onerror=alert(1)>/reward": 0.1 * step,
                    "train/../../etc/count": 4.0,
                    "train/../../etc/reward": 0.5,
                },
            )
    page = write_report(tmp_path).read_text()
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert all(p.parent == tmp_path / "report" for p in (tmp_path / "report").rglob("*.png"))
    assert not (tmp_path.parent / "etc").exists()


def test_eval_only_run_and_stale_plots(tmp_path):
    with MetricsLogger(tmp_path, tensorboard=False) as log:
        log.log(0, {"test/a/count": 8.0, "test/a/reward": 0.25, "test/a/response_length": 40.0})
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "old__reward.png").write_bytes(PNG_MAGIC)
    page = write_report(tmp_path).read_text()
    assert "a__reward.png" in page and "a__length.png" in page
    assert not (tmp_path / "report" / "old__reward.png").exists()


def test_report_needs_metrics(tmp_path):
    with pytest.raises(MetricsError, match="no metrics file"):
        write_report(tmp_path)


def test_empty_metrics_give_a_page(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("")
    assert "No metrics yet." in write_report(tmp_path).read_text()


def test_run_level_series_are_split_by_magnitude():
    def s(v: float) -> _Series:
        return _Series([1, 2, 3], [v, v, v])

    clusters = _by_magnitude(
        [("entropy", s(1.2)), ("clip", s(0.003)), ("grad_norm", s(0.2)), ("kl", s(0.001))]
    )
    assert [[k for k, _ in c] for c in clusters] == [["entropy", "grad_norm"], ["clip", "kl"]]


def test_panels_name_metrics_that_completion_metrics_emits():
    from triune_train.metrics import _OWN_METRICS

    emitted = set(_OWN_METRICS) | {"tau", "iou", "map"}  # the last three are detection components
    assert {m for _, _, metrics, _ in PANELS for m, _ in metrics} <= emitted
