"""TrialConfig round-trips through dict, JSON, YAML and files, and loads into build_optimizer."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zoo
from groupwise import GroupConfig, SchemeChoice, TrialConfig, build_optimizer

SEED_000 = {
    "scheme": "module_type",
    "groups": {
        "embedding": {"optimizer": "adamw", "lr": 0.001, "weight_decay": 0.01},
        "recurrent": {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9},
        "linear": {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 0.0},
    },
}

labels = st.text("abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=12)
scalars = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(10**6), 10**6),
    st.booleans(),
    st.none(),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3).map(tuple))
groups = st.builds(
    GroupConfig,
    optimizer=st.sampled_from(["sgd", "adamw", "muon"]),
    hyperparameters=st.dictionaries(labels.filter(lambda k: k != "optimizer"), values, max_size=4),
)
schemes = st.one_of(
    st.sampled_from(["single", "module_type", "role"]).map(SchemeChoice),
    st.integers(1, 8).map(lambda k: SchemeChoice("depth", {"blocks": k})),
    st.dictionaries(
        labels.filter(lambda k: k != "rest"), st.just("^x"), min_size=1, max_size=3
    ).map(lambda p: SchemeChoice("by_name", {"patterns": p})),
)
configs = st.builds(
    TrialConfig, scheme=schemes, groups=st.dictionaries(labels, groups, min_size=1, max_size=5)
)


@settings(max_examples=200, deadline=None)
@given(configs)
def test_round_trips(config):
    assert TrialConfig.from_dict(config.to_dict()) == config
    assert TrialConfig.from_json(config.to_json()) == config
    assert TrialConfig.from_yaml(config.to_yaml()) == config
    assert hash(TrialConfig.from_json(config.to_json())) == hash(config)
    assert json.loads(config.to_json()) == config.to_dict()  # plain data only


def test_export_format_is_the_design_record():
    config = TrialConfig.from_dict(SEED_000)
    assert config.to_dict() == SEED_000
    assert config.groups["embedding"] == GroupConfig("adamw", {"lr": 0.001, "weight_decay": 0.01})
    depth = TrialConfig.from_dict(
        {"scheme": {"name": "depth", "blocks": 3}, "groups": {"block0": {"optimizer": "sgd"}}}
    )
    assert depth.scheme == SchemeChoice("depth", {"blocks": 3})
    assert depth.to_dict()["scheme"] == {"name": "depth", "blocks": 3}


def test_sequences_become_tuples_and_are_written_as_lists():
    config = TrialConfig.from_dict(
        {"scheme": "single", "groups": {"all": {"optimizer": "adam", "betas": [0.8, 0.9]}}}
    )
    assert config.groups["all"].hyperparameters["betas"] == (0.8, 0.9)
    assert "betas:\n    - 0.8\n    - 0.9" in config.to_yaml()


def test_yaml_floats_in_exponent_form_are_floats():
    text = "scheme: single\ngroups:\n  all: {optimizer: adamw, lr: 3e-4, weight_decay: 1E-2}\n"
    hyper = TrialConfig.from_yaml(text).groups["all"].hyperparameters
    assert hyper == {"lr": 3e-4, "weight_decay": 1e-2}
    assert all(isinstance(v, float) for v in hyper.values())


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json"])
def test_files_load_into_build_optimizer(tmp_path, suffix, my_model):
    path = TrialConfig.from_dict(SEED_000).save(tmp_path / f"best{suffix}")
    assert TrialConfig.load(path) == TrialConfig.from_dict(SEED_000)
    from_file = build_optimizer(my_model, path)
    from_str = build_optimizer(zoo.twin(my_model), str(path))
    from_dict = build_optimizer(zoo.twin(my_model), SEED_000)
    for opt in (from_file, from_str):
        assert [(g["label"], g["lr"]) for g in opt.param_groups] == [
            (g["label"], g["lr"]) for g in from_dict.param_groups
        ]
    assert from_file.config == TrialConfig.from_dict(SEED_000)


def test_an_unwritable_path_is_a_config_error(tmp_path):
    from groupwise.errors import ConfigError

    config = TrialConfig.from_dict(SEED_000)
    with pytest.raises(
        ConfigError, match="missing/best.yaml: cannot write the config: No such file"
    ):
        config.save(tmp_path / "missing" / "best.yaml")


def test_hand_written_yaml_file(tmp_path, my_model):
    path = tmp_path / "best.yaml"
    path.write_text(
        "scheme: {name: depth, blocks: 2}\n"
        "groups:\n"
        "  block0: {optimizer: adamw, lr: 1e-3}\n"
        "  block1: {optimizer: sgd, lr: 0.1, momentum: 0.9}\n"
    )
    optimizer = build_optimizer(my_model, path)
    assert [(g["label"], g["optimizer"], g["lr"]) for g in optimizer.param_groups] == [
        ("block0", "adamw", 1e-3),
        ("block1", "sgd", 0.1),
    ]


def test_the_config_module_imports_only_the_standard_library():
    """TrialConfig is plain data that crosses process boundaries: its module stays light."""
    import ast
    import sys
    from pathlib import Path

    import groupwise.config

    tree = ast.parse(Path(groupwise.config.__file__).read_text())
    imported = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported - {"groupwise", "__future__"} <= set(sys.stdlib_module_names)


def test_public_names_resolve():
    import groupwise

    for name in groupwise.__all__:
        assert getattr(groupwise, name) is not None
    assert callable(groupwise.partition) and callable(groupwise.load_best)


def test_the_best_record_feeds_build_optimizer(tmp_path):
    """`groupwise best --format json|yaml` prints a record whose 'config' is the config; the
    help says it feeds build_optimizer, so it does (as a dict and as a file)."""
    import json

    import zoo
    from groupwise import _yaml, build_optimizer

    config = {
        "scheme": "module_type",
        "groups": {
            "embedding": {"optimizer": "adamw", "lr": 0.01},
            "recurrent": {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9},
            "linear": {"optimizer": "adamw", "lr": 0.002},
        },
    }
    record = {"study": "s", "trial": 3, "value": 0.5, "direction": "minimize"}
    record |= {"metric": "val_loss", "config": config}
    assert TrialConfig.from_dict(record) == TrialConfig.from_dict(config)
    (tmp_path / "best.json").write_text(json.dumps(record))
    (tmp_path / "best.yaml").write_text(_yaml.dump({**record, "top": [record]}))
    for path in ("best.json", "best.yaml"):
        optimizer = build_optimizer(zoo.MyModel(), tmp_path / path)
        assert [g["label"] for g in optimizer.param_groups] == ["embedding", "recurrent", "linear"]
