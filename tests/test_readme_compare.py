"""The README's default-comparison block is what scripts/regenerate-readme.py renders from the
committed docs/compare/ files: a table or number edited by hand, or files regenerated without
re-rendering the README, fail here."""

from __future__ import annotations

import csv
import importlib.util
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMPARE = ROOT / "docs" / "compare"


def _script():
    spec = importlib.util.spec_from_file_location(
        "regenerate_readme", ROOT / "scripts" / "regenerate-readme.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_block_is_what_the_committed_compare_files_render():
    script = _script()
    readme = (ROOT / "README.md").read_text()
    start, end = script.readme_block(readme)
    assert readme[start:end] == script.render(COMPARE)
    assert script.main(["--check"]) == 0
    # the table is docs/compare's, verbatim
    table = (COMPARE / "table.txt").read_text().rstrip("\n")
    assert f"```\n{table}\n```" in readme[start:end]


def test_the_committed_comparison_is_of_the_current_package_sources():
    """docs/compare was trained by this checkout's package (its sources' hash, which decides
    whether a result is stale): a package change without `regenerate-readme.py --run`
    fails here, so the README never quotes numbers of other code."""
    import json

    from sslobjectives.train.rundir import code_version

    measured = json.loads((COMPARE / "measured.json").read_text())
    assert measured.get("source") == code_version()["source"], (
        "docs/compare is of other package sources: rerun python scripts/regenerate-readme.py "
        "--run"
    )


def _checkout_copy(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    (root / "docs").mkdir(parents=True)
    shutil.copy(ROOT / "README.md", root / "README.md")
    shutil.copytree(COMPARE, root / "docs" / "compare")
    return root


def test_a_stale_readme_fails_the_check_and_is_re_rendered_in_its_block_only(tmp_path, capsys):
    script = _script()
    root = _checkout_copy(tmp_path)
    compare = root / "docs" / "compare"
    # a regenerated comparison: dino's mAP moves above every other (and its k-NN with it)
    path = compare / "summary.csv"
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        if row["label"] == "dino":
            row["map"], row["map_ci"], row["knn"] = "0.9", "0.001", "0.99"
        if row["label"] == "bits-fixed":
            row["map"], row["map_ci"] = "0.95", "0.001"
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    before = (root / "README.md").read_text()
    capsys.readouterr()
    assert script.main(["--check", "--root", str(root)]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert "not what docs/compare renders" in line and "regenerate-readme.py" in line
    assert script.main(["--root", str(root)]) == 0
    after = (root / "README.md").read_text()
    start, end = script.readme_block(after)
    b_start, b_end = script.readme_block(before)
    assert after[:start] == before[:b_start] and after[end:] == before[b_end:]
    block = " ".join(after[start:end].split())  # as wrapped
    methods = {r["label"]: r for r in rows if not r.get("baseline")}

    def span(labels, key):
        values = [float(methods[label][key]) for label in labels]
        return f"{min(values):.3f}–{max(values):.3f}"

    cluster = ("dino", "kl_inverse_prior", "sinkhorn")
    other = ("simdino", "bits-fixed", "bits-reset")
    assert f"retrieval mAP {span(cluster, 'map')} for the cluster" in block
    assert f"{span(other, 'map')} for the continuous" in block
    assert span(cluster, "map").endswith("0.900") and span(other, "map").endswith("0.950")
    assert "`bits-fixed` 0.950 ± 0.001 vs `dino` 0.900 ± 0.001: in the means the paper's" in block
    assert "the CIs apart" in block and f"k-NN {span(methods, 'knn')}" in block
    assert span(methods, "knn").endswith("0.990")
    assert script.main(["--check", "--root", str(root)]) == 0


def test_a_readme_without_its_markers_is_one_line(tmp_path, capsys):
    script = _script()
    root = _checkout_copy(tmp_path)
    text = (root / "README.md").read_text().replace("<!-- compare:end -->", "")
    (root / "README.md").write_text(text)
    capsys.readouterr()
    assert script.main(["--check", "--root", str(root)]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert "compare:begin" in line
