"""Every numeric config value is checked in the one place configs are built: a non-finite or
wrongly typed value (``true`` is not a number, ``1.5`` is not an integer) for any numeric key
of the run config, of every objective's Config and of the teacher-temperature schedule is
refused with a ``ValueError`` naming the key; run ids of valid configs do not change."""

from __future__ import annotations

import dataclasses
import math
import typing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sslobjectives.objectives import REGISTRY, TeacherTempSchedule, build
from sslobjectives.objectives.base import _allowed_types
from sslobjectives.train.config import RunConfig


def numeric_keys(cls: type) -> dict[str, tuple[type, ...]]:
    """Fields annotated int or float (optionally None), read from the annotations so that a
    key added later is covered without editing this test."""
    out = {}
    for key, hint in typing.get_type_hints(cls).items():
        allowed = _allowed_types(hint)
        if (int in allowed or float in allowed) and bool not in allowed:
            out[key] = allowed
    return out


def bad_values(allowed: tuple[type, ...]):
    values = [math.nan, math.inf, -math.inf, True, False, "1", [1.0], {"x": 1}]
    if type(None) not in allowed:
        values.append(None)
    if float not in allowed:
        values += [1.5, 2.0]
    return st.sampled_from(values)


CASES = [("run", RunConfig, key, allowed) for key, allowed in numeric_keys(RunConfig).items()]
CASES += [
    ("schedule", TeacherTempSchedule, key, allowed)
    for key, allowed in numeric_keys(TeacherTempSchedule).items()
]
CASES += [
    (name, cls.Config, key, allowed)
    for name, cls in REGISTRY.items()
    for key, allowed in numeric_keys(cls.Config).items()
]


def test_every_config_has_numeric_keys_under_test():
    owners = {owner for owner, *_ in CASES}
    assert owners == {"run", "schedule", *REGISTRY}
    assert {"clip_grad", "min_lr", "weight_decay", "collapse_entropy_frac"} <= {
        key for owner, _, key, _ in CASES if owner == "run"
    }


@settings(max_examples=150, deadline=None)
@given(case=st.sampled_from(CASES), data=st.data())
def test_non_finite_or_wrongly_typed_numeric_value_is_refused_naming_the_key(case, data):
    owner, cls, key, allowed = case
    value = data.draw(bad_values(allowed))
    attempts = []
    if owner == "run":
        attempts.append(lambda: RunConfig(**{key: value}))
        attempts.append(lambda: RunConfig.from_dict({key: value}))
    elif owner == "schedule":
        attempts.append(lambda: TeacherTempSchedule(**{key: value}))
    else:
        attempts.append(lambda: build(owner, **{key: value}))
        attempts.append(lambda: cls(**{key: value}))
        attempts.append(lambda: RunConfig(objective=owner, objective_cfg={key: value}))
    for attempt in attempts:
        with pytest.raises(ValueError, match=key):
            attempt()


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"clip_grad": -1.0}, "clip_grad"),
        ({"min_lr": -1e-5}, "min_lr"),
        ({"weight_decay": -0.1}, "weight_decay"),
        ({"weight_decay_end": -0.1}, "weight_decay_end"),
        ({"warmup_epochs": -1}, "warmup_epochs"),
        ({"seed": -3}, "seed"),
        ({"collapse_entropy_frac": 1.5}, "collapse_entropy_frac"),
        ({"teacher_temp_warmup_frac": -0.1}, "teacher_temp_warmup_frac"),
        ({"collapse_rank": -2.0}, "collapse_rank"),
        ({"backbone_kwargs": {"width": math.nan}}, "backbone_kwargs.width"),
    ],
)
def test_run_config_out_of_range_is_refused_in_one_message(changes, key):
    with pytest.raises(ValueError, match=f"invalid run config: .*{key}") as err:
        RunConfig(**changes)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_defaults_and_their_run_ids_are_unchanged_by_the_checks(name):
    cfg = REGISTRY[name].Config()
    values = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    assert build(name, **values).config == cfg
    assert RunConfig(objective=name).run_id == RunConfig.from_dict({"objective": name}).run_id


def test_default_run_id_is_pinned():
    # computed before the value checks existed (after clip_mode joined the config, which
    # changed every id on purpose): the checks themselves leave valid configs' ids alone
    assert RunConfig().run_id == "57247054513e"


@pytest.mark.parametrize(
    ("setting", "key"),
    [
        ("clip_grad=NaN", "clip_grad"),
        ("min_lr=-1e-5", "min_lr"),
        ("weight_decay=NaN", "weight_decay"),
        ("collapse_rank=NaN", "collapse_rank"),
        ("bits.beta=true", "beta"),
    ],
)
def test_cli_overrides_are_refused_before_any_run(setting, key, tmp_path, capsys):
    from sslobjectives.cli import main

    out = tmp_path / "cmp"
    assert main(["compare", "--set", setting, "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert key in err and "Traceback" not in err
    assert not (out / "runs").exists()
