"""An objective from the user's own package, installed as pip installs one (the package
and a ``*.dist-info`` with ``entry_points.txt`` in a directory on ``sys.path``), is usable
by name through ``build``, a run config, ``sslobj compare``, a sweep spec, ``sslobj demo``
and ``sslobj verify --objective`` without editing this package; so is ``module:Class``."""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path

import pytest
import tomllib
import torch

from sslobjectives.cli import main
from sslobjectives.compare import default_methods, plan_runs, select_methods
from sslobjectives.demo import run_demo
from sslobjectives.objectives import build, check_objective, get, names
from sslobjectives.sweep.spec import parse_spec
from sslobjectives.train import RunConfig

PLUGIN = '''
"""A user's objective: cosine agreement of normalised embeddings, weighted."""
from dataclasses import dataclass

import torch

from sslobjectives import functional as Fn
from sslobjectives.objectives import LossOutput, Objective, check_config_values


@dataclass(frozen=True)
class AgreementConfig:
    weight: float = 1.0
    n_repeats: int = 1

    def __post_init__(self):
        check_config_values(self)
        if self.weight <= 0:
            raise ValueError(f"weight must be > 0, got {self.weight}")


class Agreement(Objective):
    name = "agreement"
    Config = AgreementConfig
    head_kind = "embedding"

    def compute(self, student, teacher, epoch, stats):
        align = self.config.weight * Fn.multicrop_cosine_distance(student, teacher)
        out = LossOutput(loss=align, terms={"align": align})
        if stats:
            joined = torch.cat([t.detach() for t in teacher])
            out.stats = lambda: {"teacher_norm": joined.norm(dim=1).mean()}
        return out


class LeakyTeacher(Objective):
    """Breaks the contract twice: the teacher is not detached, the stats carry a graph."""
    name = "leaky"
    Config = AgreementConfig
    head_kind = "embedding"

    def compute(self, student, teacher, epoch, stats):
        loss = sum(((s - t) ** 2).mean() for s in student for t in teacher)
        return LossOutput(loss=loss, stats={"raw": loss} if stats else None)


class NotAnObjective:
    pass
'''

ENTRY_POINTS = """
[sslobjectives.objectives]
agreement = my_ssl_plugin:Agreement
leaky = my_ssl_plugin:LeakyTeacher
broken = my_ssl_plugin:Missing
"""


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """``pip install my-ssl-plugin`` into a fresh directory on ``sys.path``."""
    site = tmp_path / "site"
    (site / "my_ssl_plugin").mkdir(parents=True)
    (site / "my_ssl_plugin" / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    dist = site / "my_ssl_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-ssl-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", str(site), prepend=":")  # spawned workers see it too
    yield site
    for mod in [m for m in sys.modules if m.startswith("my_ssl_plugin")]:
        del sys.modules[mod]


def test_entry_point_and_module_class_spellings_build(plugin):
    assert {"agreement", "leaky", "broken"} <= set(names())
    assert names()[:5] == ["dino", "kl_inverse_prior", "sinkhorn", "bits", "simdino"]
    for spelling in ("agreement", "my_ssl_plugin:Agreement"):
        obj = build(spelling, weight=2.0)
        assert type(obj).__name__ == "Agreement" and obj.config.weight == 2.0
        views = [torch.randn(4, 8) for _ in range(3)]
        assert torch.isfinite(obj(views, views[:2]).loss)
    assert get("agreement") is get("my_ssl_plugin:Agreement")


def test_plugin_config_values_are_checked_like_the_builtins(plugin):
    with pytest.raises(ValueError, match="objective 'agreement': weight must be a finite number"):
        build("agreement", weight=True)
    with pytest.raises(ValueError, match="n_repeats must be an integer"):
        build("my_ssl_plugin:Agreement", n_repeats=float("nan"))
    with pytest.raises(ValueError, match="did you mean 'weight'"):
        build("agreement", wieght=1.0)
    with pytest.raises(ValueError, match="weight must be > 0"):
        build("agreement", weight=-1.0)


def test_unloadable_plugins_say_why(plugin):
    with pytest.raises(ValueError, match="entry point 'my_ssl_plugin:Missing'.*cannot be loaded"):
        build("broken")
    with pytest.raises(ValueError, match="not a subclass of sslobjectives.objectives.Objective"):
        build("my_ssl_plugin:NotAnObjective")
    with pytest.raises(ValueError, match="cannot import module 'no_such_module'"):
        build("no_such_module:Thing")
    with pytest.raises(ValueError, match="has no 'Nope'"):
        get("my_ssl_plugin:Nope")
    with pytest.raises(ValueError, match="unknown objective 'agreemnt'.*did you mean 'agreement'"):
        get("agreemnt")


def test_run_config_and_sweep_spec_take_plugin_names(plugin):
    cfg = RunConfig(objective="agreement", objective_cfg={"weight": 0.5})
    assert cfg.run_id != RunConfig(objective="agreement").run_id
    with pytest.raises(ValueError, match="invalid run config: objective 'agreement': weight"):
        RunConfig(objective="agreement", objective_cfg={"weight": float("inf")})
    spec = parse_spec(
        {
            "sweep": {"name": "plugin", "seeds": [0]},
            "base": {"objective": "my_ssl_plugin:Agreement", "epochs": 1},
            "grid": {"objective_cfg.weight": [0.5, 2.0]},
            "executor": {"kind": "debug"},
        }
    )
    runs = spec.expand()
    assert [r.config.objective_cfg["weight"] for r in runs] == [0.5, 2.0]
    assert {r.config.objective for r in runs} == {"my_ssl_plugin:Agreement"}


def test_compare_plans_and_trains_a_plugin_by_name(plugin, tmp_path, capsys):
    methods = select_methods(default_methods(1), ["agreement", "my_ssl_plugin:Agreement"])
    assert [m.objective for m in methods] == ["agreement", "my_ssl_plugin:Agreement"]
    configs = plan_runs(methods, [0], {"epochs": 1})
    assert [c.objective for c in configs] == ["agreement", "my_ssl_plugin:Agreement"]

    out = tmp_path / "cmp"
    tiny = [
        "--dataset", "digits",
        "--epochs", "1", "--set", "batch_size=256", "--set", "head_dim=32", "--set",
        "head_hidden=64", "--set", "bottleneck_dim=16", "--set", "knn_k=5", "--set",
        "warmup_epochs=0", "--n-local", "0", "--set", "agreement.weight=0.5",
    ]  # fmt: skip
    code = main(["compare", "--objectives", "agreement", "--seeds", "1", "--out", str(out),
                 "--jobs", "1", "--no-progress", *tiny])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    (result_file,) = out.glob("runs/*/result.json")
    result = json.loads(result_file.read_text())
    assert result["status"] == "done" and result["config"]["objective"] == "agreement"
    assert result["config"]["objective_cfg"] == {"weight": 0.5}
    assert "align" in result["history"][0]


def test_demo_shows_installed_plugins_and_module_class(plugin, capsys):
    rows = run_demo(batch=8, dim=16, objectives=["agreement", "my_ssl_plugin:Agreement"])
    assert [r["objective"] for r in rows] == ["agreement", "my_ssl_plugin:Agreement"]
    assert rows[0]["loss"] == rows[1]["loss"] and "teacher_norm" in rows[0]
    assert main(["demo", "--batch", "8", "--dim", "16", "--objectives", "agreement"]) == 0
    assert "teacher_norm" in capsys.readouterr().out


def test_contract_checks_pass_for_a_good_plugin_and_name_what_a_bad_one_breaks(plugin, capsys):
    good = check_objective("agreement")
    assert good and all(c.passed for c in good), good
    bad = {c.claim: c for c in check_objective("leaky")}
    assert not bad["no gradient reaches the teacher tensors"].passed
    assert not bad["the teacher side is detached inside (student tensors passed as teacher)"].passed
    assert not bad["the stats are detached scalar tensors"].passed
    assert bad["the loss is a finite scalar of the input's dtype"].passed
    assert main(["verify", "--objective", "my_ssl_plugin:Agreement"]) == 0
    assert "checks pass" in capsys.readouterr().out
    assert main(["verify", "--objective", "leaky"]) == 1
    assert "FAIL  no gradient reaches the teacher tensors" in capsys.readouterr().out
    assert main(["verify", "--objective", "no_such_module:X"]) == 2
    assert "cannot import module" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["dino", "kl_inverse_prior", "sinkhorn", "bits", "simdino"])
def test_builtins_pass_the_contract_checks(name):
    checks = check_objective(name)
    assert len(checks) == 6 and all(c.passed for c in checks), checks


README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _readme_block(lang: str, first_line: str) -> str:
    blocks = re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)
    (block,) = [b for b in blocks if b.startswith(first_line)]
    return block


def test_readme_plugin_example_works_as_written(tmp_path, monkeypatch, capsys):
    """The README's module, its commands and its entry-point table, as written there."""
    module = _readme_block("python", "# my_losses.py")
    (tmp_path / "my_losses.py").write_text(module)
    monkeypatch.chdir(tmp_path)  # "in the current directory"
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    commands = _readme_block("bash", "sslobj verify --objective my_losses:Cosine")
    argv = [line.split("#")[0].split()[1:] for line in commands.strip().splitlines()]
    assert [a[0] for a in argv] == ["verify", "demo", "compare"]
    assert main(argv[0]) == 0
    assert "6/6 checks pass" in capsys.readouterr().out
    assert main(argv[1]) == 0
    assert "teacher_norm" in capsys.readouterr().out
    methods = select_methods(default_methods(1), argv[2][argv[2].index("--objectives") + 1 :][:2])
    from sslobjectives.compare import apply_overrides

    _, methods = apply_overrides({}, methods, [argv[2][-1]])
    assert methods[0].objective == "my_losses:Cosine"
    assert methods[0].objective_cfg == {"weight": 0.5}
    table = tomllib.loads(_readme_block("toml", "[project.entry-points"))
    (group,) = table["project"]["entry-points"].items()
    site = tmp_path / "site"
    dist = site / "my_losses-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-losses\nVersion: 0.1\n")
    lines = [f"{k} = {v}" for k, v in group[1].items()]
    (dist / "entry_points.txt").write_text(f"[{group[0]}]\n" + "\n".join(lines) + "\n")
    monkeypatch.syspath_prepend(str(site))
    assert "cosine" in names()
    assert type(build("cosine", weight=2.0)).__name__ == "Cosine"
    sys.modules.pop("my_losses", None)
