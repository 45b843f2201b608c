"""The skpapers command."""

import re

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
    assert "nmf" in registered_experiments()


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


def test_table_renders_as_text_and_markdown():
    table = Table("T", ["a", "b"], [[1, 0.123456], ["x", True]])
    assert table.to_markdown().splitlines()[2:] == [
        "| a | b |",
        "|---|---|",
        "| 1 | 0.1235 |",
        "| x | True |",
    ]
    assert table.to_text().splitlines()[2] == "a  b     "
