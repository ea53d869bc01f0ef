"""The small named helpers: did-you-mean, text tables, value parsing, headless figures."""

import pytest

from sslobjectives.suggest import did_you_mean
from sslobjectives.texttable import format_text_table
from sslobjectives.values import NONE_SPELLINGS, is_none, parse_value


def test_did_you_mean_one_cutoff_everywhere():
    assert did_you_mean("cn", ["cnn", "mlp", "vit"]) == " (did you mean 'cnn'?)"
    assert did_you_mean("qqqq", ["cnn", "mlp"]) == ""
    assert did_you_mean("x", []) == ""
    # every unknown-name error in the library uses it
    from sslobjectives.data import load_dataset
    from sslobjectives.models import build_backbone, build_head
    from sslobjectives.objectives import build

    for call, expected in (
        (lambda: build_backbone("cn", 1, 8), "did you mean 'cnn'"),
        (lambda: build_backbone("cnn", 1, 8, widht=3), "did you mean 'widths'"),
        (lambda: build_head("binry", 4, 4, 4, 1, 4), "did you mean 'binary'"),
        (lambda: build("dino", teacher_tmp=0.1), "did you mean 'teacher_temp'"),
        (lambda: load_dataset("digit"), "did you mean 'digits'"),
    ):
        with pytest.raises(ValueError, match=expected):
            call()


def test_text_table_pads_aligns_and_strips():
    text = format_text_table(
        ["a", "bb", "c"], [["xxx", "1", ""], ["y", "22", "z"]], right={1}, rule=True
    )
    assert text.splitlines() == ["a    bb  c", "---  --  -", "xxx   1", "y    22  z"]
    assert format_text_table(["h", "k"], []) == "h  k"


@pytest.mark.parametrize("spelling", NONE_SPELLINGS)
def test_none_is_spelled_both_ways_everywhere(spelling, tmp_path):
    assert parse_value(spelling) is None and is_none(spelling)
    assert not is_none(None) and not is_none("None") and parse_value("None") == "None"
    assert parse_value("0.5") == 0.5 and parse_value('{"a": 1}') == {"a": 1}
    assert parse_value("hard") == "hard"
    # --set (compare) and specs (sweep) both take either spelling
    from sslobjectives.compare import Method, apply_overrides
    from sslobjectives.sweep import parse_spec

    base, _ = apply_overrides({}, [Method("bits", "bits")], [f"reset_period={spelling}"])
    assert base["reset_period"] is None
    spec = parse_spec(
        {
            "sweep": {"name": "n", "seeds": [0]},
            "base": {"objective": "bits"},
            "grid": {"reset_period": [spelling, 2]},
        }
    )
    assert sorted(str(r.config.reset_period) for r in spec.expand()) == ["2", "None"]


def test_headless_pyplot_uses_agg(tmp_path):
    from sslobjectives.figures import headless_pyplot

    plt = headless_pyplot()
    import matplotlib

    assert matplotlib.get_backend().lower() == "agg"
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    fig.savefig(tmp_path / "x.png")
    plt.close(fig)
    assert (tmp_path / "x.png").stat().st_size > 0
