"""Smoke tests of ``benchmarks/accuracy_stitched.py`` on tiny volumes (quick mode)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import accuracy_stitched as bench

from sklearn_overseg.synthesis.datasets import make_tissue


def _kinds_total(text: str, column: int) -> tuple[int, int]:
    """Summed (closed, links) of the gap/shared-layer rows of the kinds table."""
    closed = links = 0
    for kind in bench.LINK_KINDS:
        row = re.search(rf"^\| {re.escape(kind)} \|(.*)\|$", text, re.M)
        assert row, f"no row {kind!r} in:\n{text}"
        a, b = re.match(r"\s*(\d+) / (\d+)", row[1].split("|")[column]).groups()
        closed, links = closed + int(a), links + int(b)
    return closed, links


def test_quick_run_reads_the_data_layout_and_skips_what_is_missing(tmp_path, capsys):
    data = tmp_path / "data"
    (data / "ovule_nuclei").mkdir(parents=True)
    volume = make_tissue((16, 64, 64), cell_size=(12, 24, 24), random_state=3)
    tifffile.imwrite(data / "ovule_nuclei" / "1135_labels_gt.tif", volume)
    out = tmp_path / "report.md"

    assert bench.main(["--quick", "--data", str(data), "--write", str(out)]) == 0

    printed = capsys.readouterr().out
    assert "skipped: plant_tissue_a/labels_gt.tif" in printed
    assert "skipped: plant_ovule/labels_gt.tif" in printed
    text = out.read_text(encoding="utf-8")
    assert text.strip() in printed
    runs = [line for line in text.splitlines() if line.startswith("| ovule_nuclei 1135")]
    assert len(runs) == len(bench.QUICK_GRID)
    cells = [c.strip() for c in runs[0].strip("|").split("|")]
    links = int(cells[5])
    repaired = int(cells[6].split()[0])
    joins = int(cells[7].split()[0])
    assert links > 0  # the faults did split cells, so the scores below say something
    assert 0 <= repaired <= links and joins >= 0
    before, after, ceiling = (float(v) for v in cells[8].split(" → "))
    assert 0 < before <= ceiling <= 1 and 0 < after <= 1
    total = re.search(r"^\| \*\*all\*\* \| 1 \|(.*)$", text, re.M)
    assert total, text
    assert f"| {links} | {repaired} (" in total[0]
    # The kinds table splits the same links, and closes no more than were repaired.
    closed, kind_links = _kinds_total(text, 0)
    assert kind_links == links
    assert closed <= links


def test_without_any_volume_synthetic_tissue_stands_in(tmp_path, capsys):
    assert bench.main(["--quick", "--data", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "synthetic tissue stands in" in printed
    assert "| synthetic tissue (make_tissue, seed 7), native z |" in printed


def test_existing_report_is_not_replaced_without_overwrite(tmp_path):
    out = tmp_path / "report.md"
    out.write_text("keep me")
    with pytest.raises(SystemExit):
        bench.main(["--quick", "--data", str(tmp_path), "--write", str(out)])
    assert out.read_text() == "keep me"


def test_screen_choices_follow_the_cli():
    from sklearn_overseg.cli import build_parser

    choices = bench.screen_choices()
    assert "axial" in choices
    for choice in choices:  # every choice is one `overseg correct` accepts
        build_parser().parse_args(["correct", "in.tif", "-o", "out.tif", "--screen", choice])


def test_replace_section_touches_only_its_block():
    page = "# Accuracy\n\nother text\n"
    once = bench.replace_section(page, "## Stitched\n\nfirst")
    assert once.startswith(page.rstrip("\n"))
    assert once.count(bench.SECTION_START) == 1 and "first" in once
    twice = bench.replace_section(once + "\ntail\n", "## Stitched\n\nsecond")
    assert "first" not in twice and "second" in twice
    assert twice.startswith("# Accuracy\n\nother text") and twice.endswith("\ntail\n")
    with pytest.raises(ValueError, match="unbalanced"):
        bench.replace_section(f"{bench.SECTION_END}\n{bench.SECTION_START}\n", "x")


def test_link_kinds_classifies_consecutive_pieces():
    gt = np.zeros((10, 4, 8), dtype=np.uint8)
    gt[:, :, :4] = 1
    gt[:, :, 4:] = 2
    flawed = np.zeros_like(gt)
    flawed[0:3, :, :4] = 1  # cell 1: pieces 1, 2 (gap 0), 3 (gap 2, one layer tall)
    flawed[3:5, :, :4] = 2
    flawed[7, :, :4] = 3
    flawed[:, :2, 4:] = 4  # cell 2: two pieces beside each other (shared layers)
    flawed[:, 2:, 4:] = 5
    corrected = flawed.copy()
    corrected[flawed == 2] = 1  # the gap-0 link closed, the others not
    kinds = bench.link_kinds(flawed, corrected, gt)
    assert (kinds["gap 0 links"], kinds["gap 0 closed"]) == (1, 1)
    assert (kinds["gap ≥ 2 links"], kinds["gap ≥ 2 closed"]) == (1, 0)
    assert (kinds["shared layer links"], kinds["shared layer closed"]) == (1, 0)
    assert kinds["gap 1 links"] == 0
    assert (kinds[f"{bench.ONE_LAYER} links"], kinds[f"{bench.ONE_LAYER} closed"]) == (1, 0)


def test_totals_sum_counts_and_split_by_z():
    frame = pd.DataFrame(
        {
            "z": [1, 1, 4],
            "labels": [10, 20, 30],
            "candidates": [1, 2, 3],
            "split_links": [10, 10, 20],
            "repaired": [9, 10, 10],
            "false_joins": [0, 0, 2],
            "mAP_input": [0.2, 0.4, 0.3],
            "mAP_corrected": [0.9, 0.9, 0.5],
            "mAP_ceiling": [0.92, 0.94, 0.9],
            "seconds": [1.0, 1.0, 1.0],
        }
    )
    summary = bench.totals(frame).set_index("total")
    assert list(summary.index) == ["all", "native z", "z/4"]
    assert summary.loc["all", "split_links"] == 40 and summary.loc["all", "repaired"] == 29
    assert summary.loc["native z", "repaired_fraction"] == pytest.approx(0.95)
    assert summary.loc["native z", "targets_met"]  # 95 %, no join, mAP gap 0.03
    assert not summary.loc["z/4", "targets_met"]  # 50 % repaired, 10 % false joins
    assert summary.loc["z/4", "false_join_fraction"] == pytest.approx(0.1)
