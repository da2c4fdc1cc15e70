"""Sampling: real Optuna trials (in memory) -> TrialConfigs that build, with stable names."""

from __future__ import annotations

import itertools
import json
import math

import optuna
import pytest
import torch

import zoo
from groupwise import build_optimizer
from groupwise.config import TrialConfig
from groupwise.domains import IntRange
from groupwise.sampling import canonical_key, partition_facts, sample
from groupwise.studyfiles import SearchSpace
from paths import subprocess_env

optuna.logging.set_verbosity(optuna.logging.WARNING)


def space(**data) -> SearchSpace:
    return SearchSpace.model_validate(data)


def draw(model, sp, n=40, seed=0):
    facts = partition_facts(model, sp)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        config = sample(trial, sp, facts)
        out.append((trial, config))
        study.tell(trial, 0.0)
    return facts, out


def test_configs_build_on_the_model_and_names_are_stable(my_model):
    sp = space(
        schemes=["module_type", {"name": "depth", "blocks": {"low": 2, "high": 3}}],
        optimizers={"adamw": {}, "sgd": {}},
    )
    _, drawn = draw(my_model, sp)
    for trial, config in drawn:
        build_optimizer(my_model, config)  # every sampled config is a valid config
        names = set(trial.params)
        assert "scheme" in names
        for label, group in config.groups.items():
            assert trial.params[f"{label}.optimizer"] == group.optimizer
            assert trial.params[f"{label}.lr"] == group.hyperparameters["lr"]
        if config.scheme.name == "depth":
            assert (
                trial.params["depth.blocks"]
                == config.scheme.options["blocks"]
                == len(config.groups)
            )
    schemes = {c.scheme.name for _, c in drawn}
    assert schemes == {"module_type", "depth"}


def test_muon_is_never_offered_to_groups_with_non_matrices():
    model = zoo.TinyTransformer()
    sp = space(schemes=["role", "module_type", "decay_split"], optimizers={"muon": {}, "adamw": {}})
    facts, drawn = draw(model, sp, n=60)
    params = dict(model.named_parameters())
    assert "muon" not in facts.valid["vector"] and "muon" in facts.valid["matrix"]
    muon_groups = 0
    for _, config in drawn:
        built = build_optimizer(model, config)
        for group in built.param_groups:
            if group["optimizer"] == "muon":
                muon_groups += 1
                assert all(p.ndim == 2 for p in group["params"])
        assert all(
            params[n].ndim == 2
            for label, g in config.groups.items()
            if g.optimizer == "muon"
            for n in built.partition[label]
        )
    assert muon_groups > 0  # offered where it fits


def _every_model():
    from groupwise.tasks import available_tasks, resolve_task

    built = {name: resolve_task(name).make_model() for name in available_tasks()}
    zoo_models = {
        "zoo.MyModel": zoo.MyModel(),
        "zoo.seed_sequential": zoo.seed_sequential(),
        "zoo.seed_conv": zoo.seed_conv(),
        "zoo.TinyTransformer": zoo.TinyTransformer(),
        "zoo.deep_mlp": zoo.deep_mlp(4),
        "zoo.matrices_only": zoo.matrices_only(),
        "zoo.mixed_model": zoo.mixed_model(),
    }
    return {**built, **zoo_models}


EVERY_SCHEME = [
    "single",
    "module_type",
    "decay_split",
    {"name": "decay_split", "embeddings": "no_decay"},
    "role",
    {"name": "depth", "blocks": {"low": 1, "high": 3}},
    {"name": "by_name", "patterns": {"inner": "attn|rnn|mlp|lstm|1"}},
]


@pytest.mark.parametrize("kind", ["absolute", "relative"])
def test_muon_is_offered_hidden_matrices_only_on_every_model_and_scheme(kind):
    """Muon is for hidden matrices: a group is offered it only when every tensor it holds is
    one (not an embedding, a learned positional table, or the output head, even though each
    is 2-D), in absolute and relative spaces alike, for every built-in task's model and every
    test-zoo model under every scheme."""
    from groupwise.partition import tensor_roles

    sharing = {"relative": {"base": ["adamw"], "override": ["muon"]}} if kind == "relative" else {}
    sp = space(schemes=EVERY_SCHEME, optimizers={"adamw": {}, "muon": {}}, sharing=sharing)
    offered = 0
    for name, model in _every_model().items():
        facts = partition_facts(model, sp)
        roles = tensor_roles(model)
        for variant in facts.variants.values():
            for label, names in variant.groups.items():
                if "muon" in facts.valid[label]:
                    offered += 1
                    bad = {n: roles[n] for n in names if roles[n] != "matrix"}
                    assert not bad, (name, variant.key, label, bad)
        _, drawn = draw(model, sp, n=12)
        for _, config in drawn:  # and what is drawn builds, with Muon on matrices only
            built = build_optimizer(model, config)
            for label, group in config.groups.items():
                if group.optimizer == "muon":
                    assert {roles[n] for n in built.partition[label]} == {"matrix"}
    assert offered > 0


def test_a_space_may_offer_muon_more_roles_explicitly():
    model = zoo.TinyTransformer()  # tied head: the tied matrix is listed once, as 'tok'
    narrow = space(schemes=["role"], optimizers={"adamw": {}, "muon": {}})
    facts = partition_facts(model, narrow)
    assert "muon" in facts.valid["matrix"] and "muon" not in facts.valid["embedding"]
    wide = space(
        schemes=["role"],
        optimizers={"adamw": {}, "muon": {}},
        roles={"muon": ["matrix", "embedding"]},
    )
    assert "muon" in partition_facts(model, wide).valid["embedding"]
    with pytest.raises(ValueError, match="roles names optimizer 'sgd'"):
        space(schemes=["role"], optimizers={"adamw": {}}, roles={"sgd": ["matrix"]})
    with pytest.raises(ValueError, match="Input should be 'matrix'"):
        space(schemes=["role"], optimizers={"muon": {}}, roles={"muon": ["hidden"]})


def test_fixed_values_and_registry_defaults():
    sp = space(
        schemes=["single"],
        optimizers={
            "sgd": {"lr": {"low": 0.01, "high": 0.1, "log": True}, "momentum": 0.9},
            "adamw": None,
        },
    )
    _, drawn = draw(zoo.seed_sequential(), sp)
    for trial, config in drawn:
        group = config.groups["all"]
        if group.optimizer == "sgd":
            assert group.hyperparameters["momentum"] == 0.9
            assert set(group.hyperparameters) == {"lr", "momentum"}
            assert 0.01 <= group.hyperparameters["lr"] <= 0.1
        else:  # the registry's ranges: lr, weight_decay and betas
            assert set(group.hyperparameters) == {"lr", "weight_decay", "betas"}
            assert "all.betas.0" in trial.params


def test_shared_optimizer_with_per_group_lr(my_model):
    sp = space(
        schemes=["module_type"],
        optimizers={"adamw": {}, "sgd": {}},
        sharing={"optimizer": "shared", "lr": "per_group"},
    )
    _, drawn = draw(my_model, sp)
    for trial, config in drawn:
        assert len({g.optimizer for g in config.groups.values()}) == 1
        assert "optimizer" in trial.params
        assert len({g.hyperparameters["lr"] for g in config.groups.values()}) == 3


def test_layerwise_decay_ties_depth_blocks():
    sp = space(
        schemes=[{"name": "depth", "blocks": {"low": 2, "high": 5}}],
        optimizers={"adamw": {}},
        sharing={"optimizer": "shared", "lr": "layerwise", "hyperparameters": "shared"},
    )
    _, drawn = draw(zoo.deep_mlp(6), sp)
    for trial, config in drawn:
        lrs = [config.groups[f"block{i}"].hyperparameters["lr"] for i in range(len(config.groups))]
        assert math.isclose(lrs[-1], trial.params["lr"])
        for earlier, later in itertools.pairwise(lrs):
            assert math.isclose(earlier, later * trial.params["lr_decay"])
        wds = {g.hyperparameters["weight_decay"] for g in config.groups.values()}
        assert len(wds) == 1  # shared hyperparameters


def test_max_groups_removes_schemes_that_make_too_many():
    model = zoo.TinyTransformer()
    sp = space(
        schemes=["single", "module_type", {"name": "depth", "blocks": {"low": 1, "high": 4}}],
        optimizers={"adamw": {}},
        sharing={"max_groups": 2},
    )
    facts, drawn = draw(model, sp)
    assert "module_type" not in facts.scheme_keys  # 4 groups here
    assert all(len(c.groups) <= 2 for _, c in drawn)
    assert facts.option_ranges["depth"]["blocks"].high == 2


def test_depth_range_is_cut_to_what_the_model_has(my_model):
    sp = space(
        schemes=[{"name": "depth", "blocks": {"low": 2, "high": 8}}], optimizers={"adamw": {}}
    )
    facts, drawn = draw(my_model, sp)
    assert facts.option_ranges["depth"]["blocks"].high == 3
    assert {len(c.groups) for _, c in drawn} == {2, 3}


def test_canonical_key_merges_equivalent_configs(my_model):
    facts = partition_facts(
        my_model, space(schemes=["single", "module_type", "decay_split"], optimizers={"sgd": {}})
    )
    same = {"optimizer": "sgd", "lr": 0.1, "momentum": 0.5}
    single = TrialConfig.from_dict({"scheme": "single", "groups": {"all": same}})
    by_type = TrialConfig.from_dict(
        {
            "scheme": "module_type",
            "groups": dict.fromkeys(["embedding", "recurrent", "linear"], same),
        }
    )
    by_decay = TrialConfig.from_dict(
        {"scheme": "decay_split", "groups": dict.fromkeys(["decay", "no_decay"], same)}
    )
    assert (
        canonical_key(single, facts)
        == canonical_key(by_type, facts)
        == canonical_key(by_decay, facts)
    )
    different = TrialConfig.from_dict(
        {
            "scheme": "module_type",
            "groups": {"embedding": same, "recurrent": same, "linear": {**same, "lr": 0.2}},
        }
    )
    assert canonical_key(different, facts) != canonical_key(single, facts)


def test_canonically_equal_configs_train_identically(my_model):
    facts = partition_facts(
        my_model, space(schemes=["single", "module_type"], optimizers={"adam": {}})
    )
    same = {"optimizer": "adam", "lr": 0.01}
    a = TrialConfig.from_dict({"scheme": "single", "groups": {"all": same}})
    b = TrialConfig.from_dict(
        {
            "scheme": "module_type",
            "groups": dict.fromkeys(["embedding", "recurrent", "linear"], same),
        }
    )
    assert canonical_key(a, facts) == canonical_key(b, facts)
    models = [zoo.twin(my_model), zoo.twin(my_model)]
    for model, config in zip(models, (a, b), strict=True):
        opt = build_optimizer(model, config)
        for step in range(5):
            opt.zero_grad()
            model(torch.randint(0, 50, (4, 3), generator=torch.Generator().manual_seed(step))).pow(
                2
            ).mean().backward()
            opt.step()
    assert zoo.params_equal(*models)


def test_same_seed_same_configs(my_model):
    sp = space(schemes=["module_type", "decay_split"], optimizers={"adamw": {}, "sgd": {}})
    _, first = draw(my_model, sp, n=10, seed=3)
    _, second = draw(my_model, sp, n=10, seed=3)
    assert [c for _, c in first] == [c for _, c in second]


def test_tpe_with_pinned_arguments_samples_this_space(my_model):
    from groupwise.plan import component

    sp = space(
        schemes=["module_type", {"name": "depth", "blocks": {"low": 2, "high": 3}}],
        optimizers={"adamw": {}, "sgd": {}},
    )
    facts = partition_facts(my_model, sp)
    for name in ("tpe", "random", "gp", "cmaes", "qmc"):
        study = optuna.create_study(sampler=component("sampler", name, {}, "test", seed=0).build())
        for i in range(12):
            trial = study.ask()
            config = sample(trial, sp, facts)
            study.tell(
                trial, sum(g.hyperparameters["lr"] for g in config.groups.values()) + i * 1e-3
            )
        assert len(study.trials) == 12


@pytest.mark.parametrize("bad", [{"optimizers": {"muon": {}}, "schemes": ["single"]}])
def test_space_no_optimizer_fits(my_model, bad):
    from groupwise.errors import SpecError

    with pytest.raises(SpecError, match="can take none of the allowed optimizers"):
        partition_facts(my_model, space(**bad))


HASH_SCRIPT = """
import json, optuna
from groupwise.plan import component
from groupwise.sampling import partition_facts, sample
from groupwise.studyfiles import SearchSpace
import zoo
optuna.logging.set_verbosity(optuna.logging.WARNING)
space = SearchSpace.model_validate({
    "schemes": ["module_type", {"name": "depth", "blocks": 3}],
    "optimizers": {"adamw": {}, "sgd": {}},
})
facts = partition_facts(zoo.TinyTransformer(), space)
study = optuna.create_study(sampler=component("sampler", "random", {}, "t", seed=0).build())
print(json.dumps([sample(study.ask(), space, facts).to_dict() for _ in range(8)]))
"""


def test_the_same_seed_samples_the_same_configs_whatever_the_hash_seed():
    """Every order that reaches the sampler is deterministic: two processes with different
    PYTHONHASHSEED (set and dict-of-set iteration orders differ) sample the same configs."""
    import subprocess
    import sys

    runs = [
        subprocess.run(
            [sys.executable, "-c", HASH_SCRIPT],
            capture_output=True,
            text=True,
            check=True,
            env=subprocess_env(PYTHONHASHSEED=seed),
            timeout=300,
        ).stdout
        for seed in ("1", "2", "3")
    ]
    assert runs[0] == runs[1] == runs[2]
    assert len(json.loads(runs[0])) == 8


def test_partition_facts_say_what_did_nothing_and_what_was_cut():
    space = SearchSpace.model_validate(
        {
            "schemes": [
                {"name": "role", "head": "lm_head"},
                {"name": "by_name", "patterns": {"emb": "^tok", "nothing": "^nope"}},
                {"name": "depth", "blocks": {"low": 2, "high": 8}},
            ],
            "optimizers": {"adamw": {}},
        }
    )
    facts = partition_facts(zoo.TinyTransformer(), space, source="space.yaml")
    notes = "\n".join(facts.notes)
    assert "space.yaml: schemes[0] (role(head=lm_head)): option head 'lm_head' matches no" in notes
    assert "'pos' (8, 16) is registered on the model itself" in notes
    assert "space.yaml: schemes[1]" in notes and "pattern 'nothing' ('^nope') matches no" in notes
    assert "space.yaml: schemes[2] (depth): blocks 2..8 cut to 2..4" in notes
    assert facts.option_ranges["depth"]["blocks"] == IntRange(2, 4)


def test_partition_facts_say_when_a_scheme_fits_the_model_nowhere():
    """A model too shallow for any depth option keeps the other schemes, and the user hears
    that depth was left out and why (before, it vanished without a word)."""
    space = SearchSpace.model_validate(
        {
            "schemes": ["single", {"name": "depth", "blocks": {"low": 2, "high": 3}}],
            "optimizers": {"adamw": {}},
        }
    )
    facts = partition_facts(torch.nn.Linear(4, 2), space, source="space.yaml")
    assert {v.choice.name for v in facts.variants.values()} == {"single"}
    assert any(
        note.startswith("space.yaml: schemes[1] (depth): left out, it does not fit this model")
        and "only 0 layers" in note
        for note in facts.notes
    ), facts.notes


SCHEDULED = {
    "schemes": ["single", "role"],
    "optimizers": {"adamw": {}},
    "schedule": {
        "warmup": {"low": 0.0, "high": 0.1},
        "decay": {"choices": ["constant", "cosine", "wsd"]},
        "final_lr_fraction": {"low": 0.0, "high": 0.2},
        "decay_fraction": {"low": 0.1, "high": 0.3},
        "grad_clip_norm": {"low": 0.1, "high": 10.0, "log": True},
    },
}


@pytest.mark.parametrize("relative", [False, True])
def test_a_spaces_schedule_is_drawn_as_any_hyperparameter(my_model, relative):
    """Each trial draws its schedule and clip norm under stable names; a decay's own keys are
    drawn only where that decay has them; the encoder gives recipes the space's default."""
    from groupwise.recipes import adapt

    data = dict(SCHEDULED)
    if relative:
        data["sharing"] = {"relative": {"base": ["adamw"]}}
    sp = space(**data)
    facts, drawn = draw(my_model, sp, n=30)
    decays = set()
    for trial, config in drawn:
        schedule = config.schedule
        decays.add(schedule.decay)
        assert trial.params["schedule.decay"] == schedule.decay
        assert trial.params["schedule.warmup"] == schedule.warmup
        assert ("schedule.final_lr_fraction" in trial.params) == (schedule.decay != "constant")
        assert ("schedule.decay_fraction" in trial.params) == (schedule.decay == "wsd")
        assert trial.params["grad_clip_norm"] == config.grad_clip_norm
        assert json.loads(config.to_json())["schedule"] == schedule.to_data()
    assert decays == {"constant", "cosine", "wsd"}
    (params,) = adapt("adamw", sp, facts)  # a recipe: the space's default schedule
    assert params["schedule.decay"] == "cosine" and params["schedule.warmup"] == 0.05
    assert params["schedule.final_lr_fraction"] == 0.1 and params["grad_clip_norm"] == 1.0


def test_the_staged_sampler_does_not_hold_the_schedules_decay():
    """``schedule.decay`` is a choice of shape, not a group's weight-decay toggle: the staged
    search's first trials draw it like the base."""
    from groupwise.plan._staged import _neutral

    choices = optuna.distributions.CategoricalDistribution(["cosine", "linear"])
    toggle = optuna.distributions.CategoricalDistribution([True, False])
    assert _neutral("schedule.decay", choices) == (False, None)
    assert _neutral("matrix.decay", toggle) == (True, True)
