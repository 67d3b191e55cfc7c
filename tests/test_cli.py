"""The command-line plumbing of metarl.runs.cli: choices, presets and what --help shows."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field, fields
from typing import Literal, get_args

import pytest

from metarl.errors import MetaRLError
from metarl.rl.config import RL_PRESETS, EnvId, RLConfig, RLPreset, apply_rl_preset
from metarl.rl.config import describe_presets as describe_rl_presets
from metarl.runs.cli import check_choices, parse_with_preset, presets_as_text, with_preset
from metarl.supervised.config import SupervisedConfig, apply_preset
from metarl.supervised.presets import PRESETS, SupervisedPreset
from metarl.supervised.presets import describe_presets as describe_supervised_presets


@dataclass
class Inner:
    kind: Literal["a", "b"] = "a"


@dataclass
class Outer:
    mode: Literal["x", "y", "z"] = "x"
    maybe: Literal["p", "q"] | None = None
    name: str = "anything"
    inner: Inner = field(default_factory=Inner)
    preset: str | None = None
    size: int = 1


def test_check_choices_names_the_flag_and_the_choices():
    check_choices(Outer())
    check_choices(Outer(maybe="q", name="free text is not checked"))
    with pytest.raises(MetaRLError, match=r"^unknown --mode 'w'; choose one of x, y, z$"):
        check_choices(Outer(mode="w"))
    with pytest.raises(MetaRLError, match=r"^unknown --maybe 'r'; choose p or q$"):
        check_choices(Outer(maybe="r"))
    with pytest.raises(MetaRLError, match=r"^unknown --inner\.kind 'c'; choose a or b$"):
        check_choices(Outer(inner=Inner(kind="c")))


def test_configs_built_in_code_have_their_choices_checked():
    """validate() refuses what tyro would refuse on the command line (configs read from a run's
    config.json or built in code never pass through tyro)."""
    from metarl.rl.maml_trpo import TRPOSettings

    for cfg, message in [
        (RLConfig(env="metarl/Nope-v0"), "unknown --env 'metarl/Nope-v0'; choose one of"),
        (RLConfig(trpo=TRPOSettings(trust_region="initial")),
         "unknown --trpo.trust-region 'initial'; choose adapted or adapted+initial"),
        (SupervisedConfig(algo="maml2"), "unknown --algo 'maml2'; choose one of maml, fomaml"),
        (SupervisedConfig(batch_norm="frozen"), "unknown --batch-norm 'frozen'; choose fast or"),
    ]:
        with pytest.raises(MetaRLError) as err:
            cfg.validate()
        assert str(err.value).startswith(message)


def test_with_preset_sets_the_values_and_the_name():
    presets = {"big": {"size": 9, "mode": "y"}}
    cfg = with_preset(Outer(name="kept"), presets, "big")
    assert (cfg.size, cfg.mode, cfg.name, cfg.preset) == (9, "y", "kept", "big")
    assert with_preset(Outer(), presets, None) == Outer()
    with pytest.raises(MetaRLError, match=r"^unknown --preset 'small'; choose one of big$"):
        with_preset(Outer(), presets, "small")


def test_preset_literals_name_every_preset_and_env_id():
    import metarl.envs

    assert get_args(RLPreset) == tuple(RL_PRESETS)
    assert get_args(SupervisedPreset) == tuple(PRESETS)
    assert get_args(EnvId) == tuple(metarl.envs.ENV_IDS)


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_supervised_preset_is_a_valid_config(name):
    cfg = apply_preset(SupervisedConfig(), name)
    cfg.validate()
    assert cfg.preset == name
    assert all(getattr(cfg, k) == v for k, v in PRESETS[name].items())


def test_presets_as_text_gives_the_flags_of_each_preset():
    text = presets_as_text({"one": {"inner_lr": 0.5, "hidden_sizes": (8, 8), "oracle": True,
                                    "progress": False},
                            "two": {"family": "omniglot"}}, width=30)
    assert text.splitlines() == ["one:", "  --inner-lr 0.5",
                                 "  --hidden-sizes 8 8 --oracle", "  --no-progress",
                                 "two:", "  --family omniglot"]


def test_describe_presets_lists_every_preset_with_its_values():
    rl, supervised = describe_rl_presets(), describe_supervised_presets()
    assert [line[:-1] for line in rl.splitlines() if not line.startswith(" ")] == list(RL_PRESETS)
    assert [line[:-1] for line in supervised.splitlines()
            if not line.startswith(" ")] == list(PRESETS)
    navigation_code = rl.split("navigation-code:\n")[1].split(":\n")[0]
    assert "--inner-lr 0.5" in navigation_code and "--env metarl/Navigation2D-v0" in navigation_code
    assert "--family omniglot --n-way 20 --k-shot 5" in " ".join(supervised.split())


def help_text(cls, apply, *args: str) -> str:
    """What ``--help`` prints for ``args`` (tyro's box folded into words)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as stop:
        parse_with_preset(cls, apply, [*args, "--help"], None)
    assert stop.value.code == 0
    return " ".join(out.getvalue().replace("│", " ").split())


def test_help_shows_the_choices_and_a_presets_values_as_the_defaults():
    """--help lists the choices of every choice option and the preset names; with --preset,
    the defaults it shows are the preset's values (what the preset sets)."""
    plain = help_text(RLConfig, apply_rl_preset)
    for shown in ("--batch {steps,episodes}", "--inner-batches {shared,fresh}",
                  "--select-best {validation,train-return,last}", "--mode {stacked,vmap,loop}",
                  "--trpo.trust-region {adapted,adapted+initial}", "--activation {relu,tanh}",
                  "--preset {None,navigation,navigation-code,halfcheetah-vel,"):
        assert shown in plain
    assert "(default: 0.1)" in plain.split("--inner-lr FLOAT")[1][:200]
    code = help_text(RLConfig, apply_rl_preset, "--preset", "navigation-code")
    assert "(default: 0.5)" in code.split("--inner-lr FLOAT")[1][:200]
    assert "(default: navigation-code)" in code
    cpu = help_text(SupervisedConfig, apply_preset, "--preset=omniglot-5way-1shot-cpu")
    for shown in ("--algo {maml,fomaml,reptile,pretrained}", "--batch-norm {fast,original}",
                  "--family {sinusoid,omniglot,miniimagenet}"):
        assert shown in cpu
    assert "(default: omniglot)" in cpu.split("--family")[1][:300]
    assert "(default: 3000)" in cpu.split("--iterations INT")[1][:100]


def test_choice_fields_are_literals():
    """No setting with a fixed set of values is typed ``str`` (its --help would say STR)."""
    free_text = {"device"}  # devices are open-ended: cuda:1, ...
    for cls in (RLConfig, SupervisedConfig):
        strings = [f.name for f in fields(cls) if f.type in ("str", "str | None")]
        assert set(strings) <= free_text, strings
