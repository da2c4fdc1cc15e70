"""Relative search spaces (a shared base and per-group deviations), the encoder that inverts
sampling, and recipes adapted to models."""

from __future__ import annotations

import optuna
import pytest

import zoo
from groupwise.config import TrialConfig
from groupwise.plan import component
from groupwise.recipes import RECIPES, RecipeSkippedError, adapt
from groupwise.sampling import NotRepresentableError, canonical_key, encode, partition_facts
from groupwise.sampling import sample as draw
from groupwise.studyfiles import SearchSpace
from groupwise.tasks import available_tasks, resolve_task

optuna.logging.set_verbosity(optuna.logging.WARNING)

RELATIVE = SearchSpace.model_validate(
    {
        "schemes": ["single", "role", {"name": "depth", "blocks": {"low": 2, "high": 3}}],
        "optimizers": {"adamw": {}, "nadamw": {}, "muon": {}},
        "sharing": {"relative": {"override": ["muon"]}},
    }
)
ABSOLUTE = SearchSpace.model_validate(
    {"schemes": ["module_type", {"name": "depth", "blocks": 2}], "optimizers": {"adamw": {}}}
)


def sampled(space, facts, n, seed=0):
    study = optuna.create_study(sampler=component("sampler", "random", {}, "t", seed=seed).build())
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append((trial, draw(trial, space, facts)))
    return out


def test_one_optimizer_everywhere_is_a_point_of_the_relative_space():
    facts = partition_facts(zoo.TinyTransformer(), RELATIVE)
    (params,) = adapt("adamw", RELATIVE, facts)
    assert params["optimizer"] == "adamw" and params["lr"] == 1e-3
    assert all(v == 1.0 for k, v in params.items() if k.endswith(".lr_scale"))
    study = optuna.create_study()
    study.enqueue_trial(params)
    config = draw(study.ask(), RELATIVE, facts)
    (group,) = config.groups.values()  # single: one group, exactly AdamW's defaults
    assert group.optimizer == "adamw"
    assert dict(group.hyperparameters) == {"lr": 1e-3, "weight_decay": 0.01, "betas": (0.9, 0.999)}


def test_relative_names_are_stable_and_configs_absolute():
    facts = partition_facts(zoo.TinyTransformer(), RELATIVE)
    names: set[str] = set()
    for trial, config in sampled(RELATIVE, facts, 40):
        names |= set(trial.params)
        base_lr = trial.params["lr"]
        for label, group in config.groups.items():  # plain absolute settings, no scales
            assert set(group.hyperparameters) >= {"lr"}
            if group.optimizer != "muon":  # one group takes the base lr itself
                scale = trial.params[f"{label}.lr_scale"] if len(config.groups) > 1 else 1.0
                assert group.hyperparameters["lr"] == pytest.approx(base_lr * scale)
        TrialConfig.from_dict(config.to_dict())  # the export format
    assert {"scheme", "optimizer", "lr", "adamw.weight_decay", "matrix.optimizer"} <= names
    assert {"matrix.lr_scale", "all.decay", "muon.lr", "depth.blocks"} <= names
    assert "all.lr_scale" not in names  # one group: its lr is the base lr
    # an override's settings are shared by its groups, never per label
    assert not any(n.startswith("matrix.") and n.endswith("momentum") for n in names)


@pytest.mark.parametrize("space", [RELATIVE, ABSOLUTE], ids=["relative", "absolute"])
def test_encoding_inverts_sampling(space):
    facts = partition_facts(zoo.TinyTransformer(), space)
    for _trial, config in sampled(space, facts, 60, seed=1):
        again = encode_draw(encode(config, space, facts), space, facts)
        assert again.scheme == config.scheme and list(again.groups) == list(config.groups)
        for label, group in config.groups.items():
            assert again.groups[label].optimizer == group.optimizer
            got, want = again.groups[label].hyperparameters, group.hyperparameters
            assert got.keys() == want.keys()
            for key in want:  # an lr rebuilt as base * scale may differ in its last bit
                assert got[key] == pytest.approx(want[key], rel=1e-12), key


ADAMW_DEFAULTS = {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.01, "betas": [0.9, 0.999]}


def test_identical_configs_share_a_canonical_key_in_a_relative_space():
    facts = partition_facts(zoo.TinyTransformer(), RELATIVE)
    single = encode_draw(adapt("adamw", RELATIVE, facts)[0], RELATIVE, facts)
    # role with every group at scale 1, decay kept, no override: the same training
    role = TrialConfig.from_dict(
        {
            "scheme": "role",
            "groups": {
                label: {
                    "optimizer": "adamw",
                    "lr": 1e-3,
                    "weight_decay": 0.01,
                    "betas": [0.9, 0.999],
                }
                for label in facts.variant("role", {}).groups
            },
        }
    )
    assert canonical_key(role, facts) == canonical_key(single, facts)


def test_a_config_the_space_cannot_draw_is_refused_with_the_reason():
    facts = partition_facts(zoo.TinyTransformer(), ABSOLUTE)
    outside = TrialConfig.from_dict(
        {
            "scheme": "module_type",
            "groups": {
                label: {"optimizer": "adamw", "lr": 5.0}
                for label in facts.variant("module_type", {}).groups
            },
        }
    )
    with pytest.raises(NotRepresentableError, match=r"lr = 5 is outside the space's 1e-05..0.1"):
        encode(outside, ABSOLUTE, facts)


MODELS = {
    name: lambda name=name: resolve_task(name, seed=0).build_model() for name in available_tasks()
}
MODELS |= {
    "user:MyModel": zoo.MyModel,
    "user:matrices_only": zoo.matrices_only,
    "user:conv": zoo.seed_conv,
}


@pytest.mark.parametrize("model", sorted(MODELS))
def test_every_recipe_adapts_to_every_model_or_says_why_not(model):
    space = SearchSpace.model_validate(
        {
            "schemes": [
                "single",
                "role",
                "decay_split",
                {"name": "depth", "blocks": {"low": 2, "high": 4}},
            ],
            "optimizers": {"adamw": {}, "muon": {}},
            "sharing": {"relative": {"override": ["muon"]}},
        }
    )
    facts = partition_facts(MODELS[model](), space)
    adapted, skipped = {}, {}
    for name in RECIPES.names():
        try:
            adapted[name] = encode_draw(adapt(name, space, facts)[0], space, facts)
        except RecipeSkippedError as e:
            skipped[name] = str(e)
    assert {"adamw", "decay_split"} <= set(adapted)
    assert set(skipped) <= {"muon_split"} and all(
        "no hidden matrices" in w for w in skipped.values()
    )
    decayed = adapted["decay_split"]  # nanoGPT's split: no decay on biases and norms only
    for label, group in decayed.groups.items():
        exempt = label in ("no_decay", "vector")
        assert (group.hyperparameters.get("weight_decay") == 0.0) == exempt, label
    if "muon_split" in adapted:
        matrix = adapted["muon_split"].groups["matrix"]
        assert matrix.optimizer == "muon" and matrix.hyperparameters["lr"] == 0.02
    if "layerwise_decay" in adapted:
        lrs = [g.hyperparameters["lr"] for g in adapted["layerwise_decay"].groups.values()]
        assert lrs == sorted(lrs) and lrs[-1] == pytest.approx(1e-3)


def test_the_lr_sweep_is_adamw_everywhere_at_three_lrs_inside_the_space():
    facts = partition_facts(zoo.TinyTransformer(), RELATIVE)
    configs = [encode_draw(p, RELATIVE, facts) for p in adapt("lr_sweep", RELATIVE, facts)]
    (single,) = [encode_draw(p, RELATIVE, facts) for p in adapt("adamw", RELATIVE, facts)]
    assert [c.groups["all"].hyperparameters["lr"] for c in configs] == pytest.approx(
        [3e-4, 3e-3, 1e-2]
    )
    for config in configs:  # otherwise the adamw recipe itself
        (group,) = config.groups.values()
        rest = {k: v for k, v in group.hyperparameters.items() if k != "lr"}
        assert group.optimizer == "adamw" and config.scheme == single.scheme
        assert rest == {k: v for k, v in single.groups["all"].hyperparameters.items() if k != "lr"}


@pytest.mark.parametrize(
    ("lr", "kept"),
    [({"low": 1e-4, "high": 5e-3, "log": True}, [3e-4, 3e-3]), (1e-3, None)],
)
def test_the_lr_sweep_keeps_the_lrs_its_space_allows_or_says_why_not(lr, kept):
    space = SearchSpace.model_validate(
        {"schemes": ["single"], "optimizers": {"adamw": {"lr": lr}}, "sharing": {"relative": {}}}
    )
    facts = partition_facts(zoo.TinyTransformer(), space)
    if kept is None:
        with pytest.raises(RecipeSkippedError, match="does not search adamw's lr"):
            adapt("lr_sweep", space, facts)
        return
    lrs = [
        encode_draw(p, space, facts).groups["all"].hyperparameters["lr"]
        for p in adapt("lr_sweep", space, facts)
    ]
    assert lrs == pytest.approx(kept)


def test_the_lr_sweep_is_skipped_when_no_step_lies_in_the_range():
    space = SearchSpace.model_validate(
        {
            "schemes": ["single"],
            "optimizers": {"adamw": {"lr": {"low": 1e-6, "high": 1e-4, "log": True}}},
        }
    )
    with pytest.raises(RecipeSkippedError, match=r"none of the lrs .* \[1e-06, 0.0001\]"):
        adapt("lr_sweep", space, partition_facts(zoo.TinyTransformer(), space))


def encode_draw(params, space, facts):
    study = optuna.create_study()
    study.enqueue_trial(params)
    return draw(study.ask(), space, facts)


def test_the_muon_split_is_skipped_with_its_reason_on_a_model_without_hidden_matrices():
    space = SearchSpace.model_validate(
        {
            "schemes": ["role"],
            "optimizers": {"adamw": {}, "muon": {}},
            "sharing": {"relative": {"override": ["muon"]}},
        }
    )
    facts = partition_facts(zoo.seed_conv(), space)  # a conv kernel and the head: no matrices
    with pytest.raises(RecipeSkippedError, match="no hidden matrices for Muon"):
        adapt("muon_split", space, facts)


def test_the_staged_sampler_tunes_the_base_first_then_everything():
    facts = partition_facts(zoo.TinyTransformer(), RELATIVE)
    sampler = component("sampler", "staged", {"base_trials": 4}, "t", seed=0).build()
    study = optuna.create_study(sampler=sampler)
    seen = []
    for i in range(12):
        trial = study.ask()
        config = draw(trial, RELATIVE, facts)
        seen.append((trial.params, config))
        study.tell(trial, float(i % 5))
    for params, config in seen[:4]:  # the base alone: one optimizer for everything
        assert params["scheme"] == "single" and params["all.decay"] is True
        assert len(config.groups) == 1
    later = [params for params, _ in seen[4:]]
    assert {p["scheme"] for p in later} != {"single"}  # then the deviations are searched
    assert any(p.get(k) not in (None, 1.0) for p in later for k in p if k.endswith(".lr_scale"))
