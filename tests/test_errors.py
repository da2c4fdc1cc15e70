"""Every bad input gets an error that names the thing, the value and the fix."""

from __future__ import annotations

import pytest

import zoo
from groupwise import build_optimizer, partition
from groupwise.errors import (
    ConfigError,
    ConstraintError,
    GroupwiseError,
    LabelMismatchError,
    PartitionError,
    UnknownNameError,
)

SEED_GROUPS = {
    "embedding": {"optimizer": "adamw", "lr": 0.001},
    "recurrent": {"optimizer": "sgd", "lr": 0.1},
    "linear": {"optimizer": "sgd", "lr": 0.1},
}


def config(**groups):
    return {"scheme": "module_type", "groups": {**SEED_GROUPS, **groups}}


def test_unknown_scheme_lists_the_accepted_names(my_model):
    with pytest.raises(UnknownNameError) as info:
        partition(my_model, "module_types")
    message = str(info.value)
    assert "unknown partition scheme 'module_types'" in message
    assert "did you mean 'module_type'" in message
    assert "must be one of [by_name, decay_split, depth, module_type, role, single" in message


def test_unknown_scheme_in_a_config(my_model):
    with pytest.raises(UnknownNameError, match="unknown partition scheme 'layers'.*must be one of"):
        build_optimizer(my_model, {"scheme": "layers", "groups": {"all": {"optimizer": "sgd"}}})


def test_unknown_optimizer_lists_the_accepted_names(my_model):
    with pytest.raises(UnknownNameError) as info:
        build_optimizer(my_model, config(linear={"optimizer": "adamx", "lr": 0.1}))
    message = str(info.value)
    assert message.startswith("groups.linear.optimizer: unknown optimizer 'adamx'")
    assert "must be one of [adadelta, adafactor, adagrad, adam, adamax, adamw," in message
    assert "muon" in message and "sgd" in message


def test_unknown_hyperparameter_lists_what_the_optimizer_accepts(my_model):
    with pytest.raises(UnknownNameError) as info:
        build_optimizer(
            my_model, config(recurrent={"optimizer": "sgd", "lr": 0.1, "momentun": 0.9})
        )
    message = str(info.value)
    assert "groups.recurrent" in message and "'momentun'" in message
    assert "did you mean 'momentum'" in message
    accepted = "dampening, differentiable, foreach, fused, lr, maximize, momentum, nesterov"
    assert f"[{accepted}, weight_decay]" in message


def test_config_label_not_produced_shows_both_sets(my_model):
    with pytest.raises(LabelMismatchError) as info:
        build_optimizer(my_model, config(conv={"optimizer": "sgd"}))
    message = str(info.value)
    assert "['embedding', 'recurrent', 'linear', 'conv']" in message
    assert "['embedding', 'recurrent', 'linear']" in message
    assert "in the config but not produced ['conv']" in message


def test_produced_label_missing_from_config_shows_both_sets(my_model):
    groups = dict(SEED_GROUPS)
    del groups["recurrent"]
    with pytest.raises(LabelMismatchError) as info:
        build_optimizer(my_model, {"scheme": "module_type", "groups": groups})
    assert "produced but missing from the config ['recurrent']" in str(info.value)
    assert "['embedding', 'linear']" in str(info.value)


def test_muon_on_a_non_matrix_names_the_tensor_and_shape(my_model):
    with pytest.raises(ConstraintError) as info:
        build_optimizer(my_model, config(linear={"optimizer": "muon", "lr": 0.02}))
    message = str(info.value)
    assert "groups.linear: optimizer 'muon' cannot take fc.bias has shape (1,) (1-D)" in message
    assert "2-D tensors only" in message


def test_depth_with_more_blocks_than_children(my_model):
    with pytest.raises(PartitionError) as info:
        partition(my_model, "depth", blocks=4)
    message = str(info.value)
    assert "4 blocks" in message and "only 3 layers with trainable parameters" in message
    assert "[embedding, rnn, fc]" in message and "use blocks <= 3" in message


@pytest.mark.parametrize("blocks", [0, -1, 1.5, "2", True])
def test_depth_blocks_must_be_a_positive_whole_number(my_model, blocks):
    with pytest.raises(PartitionError, match=f"must be a whole number >= 1; got {blocks!r}"):
        partition(my_model, "depth", blocks=blocks)


def test_invalid_by_name_regex(my_model):
    with pytest.raises(PartitionError) as info:
        partition(my_model, "by_name", patterns={"emb": "embedding", "rnn": "rnn[0-"})
    message = str(info.value)
    assert "by_name pattern 'rnn'" in message and "'rnn[0-'" in message
    assert "invalid regular expression" in message


def test_invalid_role_head_regex(my_model):
    with pytest.raises(PartitionError, match="role option 'head'.*'fc\\('"):
        partition(my_model, "role", head="fc(")


def test_by_name_needs_patterns_and_reserves_rest(my_model):
    with pytest.raises(PartitionError, match="needs option 'patterns'"):
        partition(my_model, "by_name")
    with pytest.raises(PartitionError, match="'rest' is reserved"):
        partition(my_model, "by_name", patterns={"rest": "fc"})


def test_unknown_scheme_option(my_model):
    with pytest.raises(
        PartitionError, match=r"scheme 'depth' takes options \[blocks\]; got option 'block'"
    ):
        partition(my_model, "depth", block=2)
    with pytest.raises(
        PartitionError, match="scheme 'single' takes no options; got option 'blocks'"
    ):
        partition(my_model, {"name": "single", "blocks": 2})


@pytest.mark.parametrize("lr", [-0.1, -1e-9, float("nan"), float("inf")])
def test_negative_or_non_finite_lr(my_model, lr):
    with pytest.raises(ConfigError) as info:
        build_optimizer(my_model, config(linear={"optimizer": "sgd", "lr": lr}))
    assert f"groups.linear.lr: learning rate must be a finite number >= 0; got {lr!r}" == str(
        info.value
    )


def test_non_number_lr(my_model):
    with pytest.raises(
        ConfigError, match="groups.linear.lr: learning rate must be a number; got 'fast'"
    ):
        build_optimizer(my_model, config(linear={"optimizer": "sgd", "lr": "fast"}))


def test_torch_rejecting_a_setting_is_wrapped_with_the_group(my_model):
    with pytest.raises(ConfigError) as info:
        build_optimizer(my_model, config(embedding={"optimizer": "adamw", "betas": [0.9, 1.5]}))
    assert "groups.embedding: AdamW (adamw) rejects these settings" in str(info.value)
    assert "(0.9, 1.5)" in str(info.value)
    assert isinstance(info.value.__cause__, ValueError)


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        ({"groups": {"all": {"optimizer": "sgd"}}}, "missing key 'scheme'"),
        ({"scheme": "single"}, "missing key 'groups'"),
        ({"scheme": "single", "groups": {}}, "config.groups: must be a non-empty mapping"),
        (
            {"scheme": "single", "groups": {"all": {"lr": 0.1}}},
            "config.groups.all.optimizer: each group needs an optimizer",
        ),
        (
            {"scheme": "single", "groups": {"all": "sgd"}},
            "config.groups.all: a group must be a mapping",
        ),
        (
            {"scheme": {"blocks": 2}, "groups": {"all": {"optimizer": "sgd"}}},
            "config.scheme: a scheme mapping needs a 'name'",
        ),
        (
            {"scheme": 3, "groups": {"all": {"optimizer": "sgd"}}},
            "config.scheme: must be a scheme name or a mapping",
        ),
        (
            {"scheme": "single", "groups": {"all": {"optimizer": "sgd"}}, "extra": 1},
            "unknown key 'extra'",
        ),
        ([1, 2], "config must be a TrialConfig, a dict with 'scheme' and 'groups', or a path"),
    ],
)
def test_malformed_configs(my_model, bad, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("[", r"\[").replace("(", r"\(")):
        build_optimizer(my_model, bad)


def test_config_files_that_are_missing_unreadable_or_of_unknown_type(my_model, tmp_path):
    with pytest.raises(ConfigError, match="best.yaml: config file not found"):
        build_optimizer(my_model, tmp_path / "best.yaml")
    (tmp_path / "best.txt").write_text("scheme: single")
    with pytest.raises(
        ConfigError, match="unknown config file type '.txt'; use .yaml, .yml or .json"
    ):
        build_optimizer(my_model, tmp_path / "best.txt")
    (tmp_path / "broken.yaml").write_text("scheme: [single\n")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        build_optimizer(my_model, str(tmp_path / "broken.yaml"))
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ConfigError, match="broken.json: not valid JSON"):
        build_optimizer(my_model, tmp_path / "broken.json")


def test_not_a_model_or_nothing_to_train(my_model):
    with pytest.raises(PartitionError, match="needs a torch.nn.Module; got generator"):
        partition(my_model.parameters(), "single")
    my_model.requires_grad_(False)
    with pytest.raises(PartitionError, match="no trainable parameters"):
        partition(my_model, "single")


def test_all_are_groupwise_errors_and_value_errors():
    for cls in (ConfigError, UnknownNameError, PartitionError, LabelMismatchError, ConstraintError):
        assert issubclass(cls, GroupwiseError) and issubclass(cls, ValueError)


def test_bad_input_to_add_param_group(my_model):
    optimizer = build_optimizer(my_model, config())
    with pytest.raises(ConfigError, match="needs a new 'label'"):
        optimizer.add_param_group({"params": [], "label": "linear", "optimizer": "sgd"})
    with pytest.raises(ConfigError, match="fc.weight is already in group 'linear'"):
        optimizer.add_param_group(
            {"params": [my_model.fc.weight], "label": "x", "optimizer": "sgd"}
        )
    model = zoo.seed_sequential()
    model[1].bias.requires_grad_(False)
    opt = build_optimizer(model, {"scheme": "single", "groups": {"all": {"optimizer": "sgd"}}})
    model[1].bias.requires_grad_(True)
    with pytest.raises(ConstraintError, match=r"cannot take 1.bias has shape \(1,\) \(1-D\)"):
        opt.add_param_group({"params": [model[1].bias], "label": "bias", "optimizer": "muon"})
    assert "bias" not in opt.partition  # a refused group leaves nothing behind
