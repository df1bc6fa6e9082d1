"""The front page's results tables are the benchmarks' headline tables, and those are what
``benchmarks/headline.py`` writes from the committed results (so no number on the front page is typed by hand)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADLINE = ROOT / "benchmarks" / "results" / "headline"


def table_rows(markdown: str, drop_last_column: bool = False) -> list[list[str]]:
    """The cells of every Markdown table row (separator rows excluded), in order."""
    rows = []
    for line in markdown.splitlines():
        if not line.startswith("|") or line.startswith("|---"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        rows.append(cells[:-1] if drop_last_column else cells)
    return rows


def test_the_readme_results_are_the_headline_tables_without_their_folder_column():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    results = readme[readme.index("## Results"):readme.index("\n## ", readme.index("## Results") + 1)]
    headline = table_rows((HEADLINE / "headline.md").read_text(encoding="utf-8"), drop_last_column=True)
    assert len(headline) > 10
    assert table_rows(results) == headline
    assert "benchmarks/results/headline/headline.png" in results


def test_the_headline_script_writes_the_committed_tables_from_the_results(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "headline.py"), "--out", str(tmp_path)],
                            capture_output=True, text=True, env=dict(os.environ, MPLBACKEND="Agg"), cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("headline.md", "headline.csv"):
        assert (tmp_path / name).read_text(encoding="utf-8") == (HEADLINE / name).read_text(encoding="utf-8"), name
    assert (tmp_path / "headline.png").stat().st_size > 10_000
