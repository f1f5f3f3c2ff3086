"""``benchmarks/README.md`` says what the results files say.

Its example report is the output of ``bench_blur.py --report`` on the committed CSV, and its
table of verdicts on several CPUs holds each target's worst value and verdict as
``sigma.book.speed.check_targets`` computes them from each machine's CSV. When a target's
definition or a file changes, these fail until the README is regenerated.
"""

import contextlib
import io
import re
from pathlib import Path

import pytest

from sigma.book import speed

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "benchmarks" / "README.md"
#: the machine columns of the verdict table, in order, and their results files
MACHINES = (
    ROOT / "sigma" / "book" / "results" / "blur_cpu.csv",
    ROOT / "benchmarks" / "results" / "amd-epyc-avx2" / "blur_cpu.csv",
    ROOT / "benchmarks" / "results" / "intel-xeon-avx512" / "blur_cpu.csv",
)


@pytest.fixture(scope="module")
def text():
    return README.read_text(encoding="utf-8")


def test_example_report_is_the_report_of_the_committed_csv(text, benchmark_script):
    bench = benchmark_script("bench_blur")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = bench.report(speed.read_rows(MACHINES[0]))
    block = re.search(r"```text\n(# scale space.*?)```", text, re.S)
    assert block, "no example report block in benchmarks/README.md"
    assert block.group(1) == out.getvalue(), "regenerate it with bench_blur.py --report"
    assert status == int("[FAIL]" in out.getvalue())


def _table(text):
    """``{target key: [cell, ...]}`` of the verdict table under 'Other CPUs'."""
    section = text.split("## Other CPUs", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        m = re.match(r"\| `(\w+)` \| [^|]+ \|(.*)\|\s*$", line)
        if m:
            rows[m.group(1)] = [c.strip() for c in m.group(2).split("|")]
    return rows


def test_verdict_table_matches_every_machines_csv(text):
    table = _table(text)
    measured = [{t.key: t for t in speed.check_targets(speed.read_rows(p))} for p in MACHINES]
    assert set(table) == set(measured[0]), "one table row per target"
    for key, cells in table.items():
        assert len(cells) == len(MACHINES), key
        for cell, targets, path in zip(cells, measured, MACHINES, strict=True):
            value, verdict = re.match(r"([\d.]+) (PASS|FAIL)", cell).groups()
            t = targets[key]
            where = f"{key} on {path.parent.name}"
            assert verdict == ("PASS" if t.verdict else "FAIL"), where
            decimals = len(value.split(".")[1]) if "." in value else 0
            assert float(value) == round(t.worst, decimals), f"{where}: {value} vs {t.worst}"
