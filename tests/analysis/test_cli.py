"""``finemon query``, ``summary`` and ``report`` as a user types them, and the missing extra."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from analysis.cli import report_after_demo
from finemon.cli import main
from tests.analysis.synthetic import write_small


def one_error_line(err: str, command: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"finemon {command}: error: "), err
    return lines[0]


def test_query_prints_a_table(small_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "query",
            str(small_dir),
            "SELECT max(container_name) AS container, round(avg(per_second) / 1000) AS millicores "
            "FROM rate('container.cpu.usage_usec') GROUP BY container_key ORDER BY 2 DESC",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines() == [
        "container  millicores",
        "---------  ----------",
        "job              1000",
        "nginx             500",
        "postgres          100",
        "(3 rows)",
    ]


def test_query_prints_csv_and_cuts_long_results(
    small_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sql = (
        "SELECT time, labels FROM metrics WHERE metric_name = 'process.memory.pss_bytes' "
        "AND labels['pid'] = '101' ORDER BY time LIMIT 2"
    )
    assert main(["query", str(small_dir), sql, "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "time,labels",
        '2024-01-31 23:58:00+00:00,"{comm=nginx, pid=101}"',
        '2024-01-31 23:58:01+00:00,"{comm=nginx, pid=101}"',
    ]
    assert main(["query", str(small_dir), "SELECT * FROM range(5)", "--max-rows", "2"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "(first 2 rows; more were cut, see --max-rows)"
    )


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("selec 1", "Parser Error"),
        ("SELECT nope FROM metrics", "Binder Error"),
        ("SELECT * FROM rate()", "rate"),
    ],
)
def test_bad_sql_is_one_line_and_exit_1(
    small_dir: Path, capsys: pytest.CaptureFixture[str], sql: str, message: str
) -> None:
    assert main(["query", str(small_dir), sql]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in one_error_line(captured.err, "query")


def test_a_directory_without_data_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in (["query", str(tmp_path), "SELECT 1"], ["summary", str(tmp_path)]):
        assert main(command) == 1
        assert "no Parquet files" in one_error_line(capsys.readouterr().err, command[0])
    assert main(["report", str(tmp_path / "missing")]) == 1
    assert "no such file or directory" in one_error_line(capsys.readouterr().err, "report")


def test_summary_prints_every_run(small_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", str(small_dir), "--top", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("\nrun ") + out.startswith("run ") == 2
    assert "shop/db-0/postgres" in out and "top processes by PSS" in out


def test_report_writes_into_the_directory_by_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_small(tmp_path / "out")
    assert main(["report", str(root)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"wrote {root / '_report.html'} (")
    assert (root / "_report.html").stat().st_size > 1_000_000
    assert not list(root.glob(".*partial"))
    target = tmp_path / "elsewhere.html"
    assert main(["report", str(root), "-o", str(target), "--max-points", "50"]) == 0
    assert target.exists()
    capsys.readouterr()
    assert main(["report", str(root), "-o", str(tmp_path / "no" / "such" / "r.html")]) == 1
    assert "cannot write" in one_error_line(capsys.readouterr().err, "report")


def test_usage_errors_exit_2(small_dir: Path) -> None:
    for argv in (
        ["report", str(small_dir), "--max-points", "3"],
        ["summary", str(small_dir), "--top", "many"],
        ["query", str(small_dir)],
    ):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2


def test_without_the_extra_each_command_says_how_to_install_it(
    small_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "duckdb", None)  # import duckdb raises ImportError
    for argv in (
        ["query", str(small_dir), "SELECT 1"],
        ["summary", str(small_dir)],
        ["report", str(small_dir), "-o", "/nonexistent/r.html"],
    ):
        assert main(argv) == 1
        line = one_error_line(capsys.readouterr().err, argv[0])
        assert "pip install 'finemon[analysis]'" in line


def test_without_plotly_the_report_says_how_to_install_it(
    small_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "plotly", None)
    monkeypatch.setitem(sys.modules, "plotly.offline", None)
    assert main(["report", str(small_dir), "-o", "/nonexistent/r.html"]) == 1
    line = one_error_line(capsys.readouterr().err, "report")
    assert "plotly" in line and "pip install 'finemon[analysis]'" in line


def test_the_demo_writes_the_report_or_says_how_to_get_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_small(tmp_path / "demo")
    report_after_demo(root)
    assert capsys.readouterr().out.strip() == (
        f"report (open it in a browser, it works offline): {root / '_report.html'}"
    )
    assert (root / "_report.html").exists()

    monkeypatch.setitem(sys.modules, "duckdb", None)
    report_after_demo(root)
    out = capsys.readouterr().out.strip()
    assert out.startswith("for an HTML report with charts, install the analysis extra")
    assert f"finemon report {root}" in out

    monkeypatch.undo()
    report_after_demo(tmp_path / "empty")  # a demo that recorded nothing
    assert capsys.readouterr().out.strip().startswith("no HTML report:")


@pytest.mark.parametrize("command", ["summary", "report", "query"])
def test_unreadable_files_are_one_warning_line_and_the_rest_is_read(
    small_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    root = tmp_path / "finemon-out"
    shutil.copytree(small_dir, root)
    partition = next(root.glob("dt=*/identifier=*"))
    (partition / "zero.parquet").write_bytes(b"")
    (partition / "junk.parquet").write_bytes(b"junk" * 100)
    extra = {"summary": [], "report": ["-o", str(tmp_path / "r.html")], "query": ["SELECT 1"]}
    argv = [command, str(root), *extra[command]]
    if command == "query":
        argv[2] = "SELECT count(DISTINCT run_id) AS runs FROM metrics"
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"finemon {command}: warning: skipped 2 unreadable Parquet files in {root}: "
        f"{partition.relative_to(root)}/junk.parquet (not a Parquet file), "
        f"{partition.relative_to(root)}/zero.parquet (empty)"
    ]
    if command == "summary":
        assert captured.out.count("\nrun ") + captured.out.startswith("run ") == 2
    if command == "query":
        assert captured.out.splitlines()[2].strip() == "2"


def test_a_parquet_file_given_as_the_directory_is_read(
    small_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = sorted(small_dir.glob("dt=*/identifier=*/*.parquet"))[0]
    assert main(["summary", str(first)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("run a1a1a1a1"), out


def test_the_report_of_one_parquet_file_is_written_beside_it(
    small_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = sorted(small_dir.glob("dt=*/identifier=*/*.parquet"))[0]
    # A copy outside the dataset: the report must not land inside the file's path.
    file = tmp_path / source.name
    shutil.copyfile(source, file)
    assert main(["report", str(file)]) == 0, capsys.readouterr().err
    report = tmp_path / f"{file.stem}.report.html"
    assert report.is_file() and report.stat().st_size > 0
    assert str(report) in capsys.readouterr().out


def test_a_typo_in_rate_is_one_line_naming_the_metric(
    small_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sql = "SELECT count(*) FROM rate('container.cpu.usage_usecs')"
    assert main(["query", str(small_dir), sql]) == 1
    line = one_error_line(capsys.readouterr().err, "query")
    assert "no counter named container.cpu.usage_usecs" in line
    assert "did you mean container.cpu.usage_usec" in line
    assert "LINE" not in line and "read_parquet" not in line
