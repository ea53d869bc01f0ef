"""docs/ARCHITECTURE.md is true: the rooms it names exist, every module is named, imports run
down the floors, the run folder has one owner and the trainer reads head_kind once."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "sslobjectives"
DOC = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
UPPER = (
    "train", "baselines", "results", "compare", "sweep", "report", "verify", "cli", "live",
    "commands",
)
LOWER = (
    "functional",
    "objectives",
    "_dist",
    "diagnostics",
    "schedules",
    "suggest",
    "texttable",
    "values",
    "settings",
    "figures",
    "data",
    "models",
    "eval",
    "testbed",
)


def _modules():
    for path in sorted(PKG.rglob("*.py")):
        if path.name not in ("__init__.py", "__main__.py"):
            yield path


def test_every_module_the_doc_names_exists_and_every_module_is_named():
    named = set(re.findall(r"`(sslobjectives/[\w/]+(?:\.py)?)", DOC))
    assert named
    for name in named:
        assert (ROOT / name).exists(), name
    for path in _modules():
        rel = path.relative_to(ROOT).as_posix()
        package = path.parent.relative_to(ROOT).as_posix() + "/"
        assert rel in DOC or (package in DOC and f"`{path.name}`" in DOC), rel


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_lower_floors_import_nothing_above_them():
    for path in _modules():
        top = path.relative_to(PKG).parts[0].removesuffix(".py")
        if top not in LOWER:
            continue
        for module in _imports(path):
            parts = module.split(".")
            if parts[0] == "sslobjectives" and len(parts) > 1:
                assert parts[1] not in UPPER, f"{path.relative_to(ROOT)} imports {module}"


def test_the_run_folder_files_are_named_only_by_rundir():
    names = {"result.json", "checkpoint.pt", "attempts.jsonl", "config.json", ".running.lock"}
    for path in _modules():
        tree = ast.parse(path.read_text())
        docstrings = {
            id(n.body[0].value)
            for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef))
            and n.body
            and isinstance(n.body[0], ast.Expr)
            and isinstance(n.body[0].value, ast.Constant)
        }
        literals = {
            n.value
            for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
        }
        if path.name != "rundir.py":
            assert not literals & names, path.relative_to(ROOT)


def test_the_trainer_reads_head_kind_once_and_never_branches_on_it():
    source = (PKG / "train" / "trainer.py").read_text()
    code = ast.parse(source)
    # the objective class's declared head_kind is looked up in one place (then kept)
    reads = [
        n
        for n in ast.walk(code)
        if isinstance(n, ast.Attribute) and n.attr == "head_kind" and isinstance(n.value, ast.Call)
    ]
    assert len(reads) == 1
    kinds = {"binary", "cluster", "embedding"}
    assert not any(isinstance(n, ast.Constant) and n.value in kinds for n in ast.walk(code))


def test_the_data_flow_and_the_two_entropies_are_stated():
    assert "config -> data -> views -> backbone -> head -> objective -> trainer" in DOC
    assert "spec -> sweep -> submitit -> job -> trainer" in DOC
    assert "`final.posterior_marginal_entropy`" in DOC and "`history[].marginal_entropy`" in DOC
