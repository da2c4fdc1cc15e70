"""groupwise.transfer: each rule's lr multiplier per kind of tensor and optimizer family,
against values computed by hand from the shapes; the identity at equal width; a group
split where its tensors need different multipliers; and each refusal."""

from __future__ import annotations

import math
import subprocess
import sys

import matplotlib.image
import pytest
import torch
from torch import nn

import groupwise
from groupwise.config import TrialConfig
from groupwise.errors import ConfigError, TaskError
from groupwise.tasks import resolve_task
from groupwise.transfer import coord_check, plan_transfer, tensor_widths, transfer
from paths import subprocess_env


class Net(nn.Module):
    """An input projection, an embedding table, two hidden matrices, norms and a readout."""

    def __init__(self, w: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, w)
        self.inp = nn.Linear(5, w)
        self.hidden = nn.Linear(w, w)
        self.up = nn.Linear(w, 2 * w)
        self.norm = nn.LayerNorm(2 * w)
        self.out = nn.Linear(2 * w, 3)


NARROW, WIDE = 8, 32  # every width-scaled dimension grows 4x


def multipliers(rule: str, optimizer: str, **hyper: float | str) -> dict[str, float]:
    config = TrialConfig.from_dict(
        {"scheme": "single", "groups": {"all": {"optimizer": optimizer, **hyper}}}
    )
    done = plan_transfer(config, Net(NARROW), Net(WIDE), rule)
    return {t.name: t.multiplier for t in done.tensors}


def test_kinds_come_from_how_each_tensor_grows():
    kinds = {n: t.kind for n, t in tensor_widths(Net(NARROW), Net(WIDE)).items()}
    assert kinds == {
        "embed.weight": "input",  # a table: its rows are inputs (10), its columns grow
        "inp.weight": "input",  # fan-in 5 fixed, fan-out grows
        "inp.bias": "vector",
        "hidden.weight": "hidden",
        "hidden.bias": "vector",
        "up.weight": "hidden",
        "up.bias": "vector",
        "norm.weight": "vector",
        "norm.bias": "vector",
        "out.weight": "readout",  # fan-in grows, 3 outputs
        "out.bias": "vector",
    }
    assert {t.kind for t in tensor_widths(Net(NARROW), Net(NARROW)).values()} <= {
        "input",
        "vector",
        "fixed",
    }


# name -> multiplier for a 4x wider model, by hand: n = 4. Under SGD, what grows in fan-out
# alone (the embedding table, the input layer, every vector of the grown width) takes n_out
SGD_GROWN = dict.fromkeys(
    [
        "embed.weight",
        "inp.weight",
        "inp.bias",
        "hidden.bias",
        "up.bias",
        "norm.weight",
        "norm.bias",
    ],
    4,
)
HAND = {
    # Everett et al.: standard parametrization, Adam, full alignment: hidden and readout 1/n
    ("sp-per-layer", "adamw"): {"hidden.weight": 1 / 4, "up.weight": 1 / 4, "out.weight": 1 / 4},
    # SGD: the readout 1/n_in, hidden matrices 1
    ("sp-per-layer", "sgd"): {**SGD_GROWN, "out.weight": 1 / 4},
    # mup package (readout multiplier 1/n): Adam scales hidden only; SGD the readout by n_in
    ("mup", "adam"): {"hidden.weight": 1 / 4, "up.weight": 1 / 4},
    ("mup", "sgd"): {**SGD_GROWN, "out.weight": 4},
    ("none", "adamw"): {},
    ("none", "sgd"): {},
}


@pytest.mark.parametrize(("rule", "optimizer"), list(HAND), ids=lambda x: str(x))
def test_each_rule_scales_each_kind_as_computed_by_hand(rule, optimizer):
    got = multipliers(rule, optimizer, lr=0.1)
    expected = {name: HAND[(rule, optimizer)].get(name, 1.0) for name in got}
    assert got == pytest.approx(expected, rel=1e-12)


def test_muon_keeps_the_spectral_norm_of_its_update_in_proportion_to_the_fans():
    config = TrialConfig.from_dict(
        {
            "scheme": "role",
            "groups": {
                "matrix": {"optimizer": "muon", "lr": 0.02},
                "head": {"optimizer": "muon", "lr": 0.02},
                "embedding": {"optimizer": "adamw", "lr": 0.01},
                "vector": {"optimizer": "adamw", "lr": 0.01},
            },
        }
    )
    got = {t.name: t.multiplier for t in plan_transfer(config, Net(NARROW), Net(WIDE)).tensors}
    # hidden: sqrt(n_out / n_in) = 1 and Muon's own factor sqrt(max(1, rows/cols)) unchanged
    assert got["hidden.weight"] == got["up.weight"] == 1.0
    # readout [3, 2w]: sqrt(1 / 4); Muon's factor is 1 at both widths
    assert got["out.weight"] == pytest.approx(0.5)
    # torch's "match_rms_adamw" factor 0.2 sqrt(max(rows, cols)) grows 2x: divided out
    rms = multipliers("sp-per-layer", "muon", lr=0.02, adjust_lr_fn="match_rms_adamw")
    assert rms["hidden.weight"] == pytest.approx(0.5)
    assert rms["up.weight"] == pytest.approx(math.sqrt(16 / 64))


@pytest.mark.parametrize("rule", ["sp-per-layer", "mup", "none"])
def test_transfer_to_the_same_width_is_the_identity(rule):
    config = TrialConfig.from_dict(
        {
            "scheme": "module_type",
            "groups": {
                "linear": {"optimizer": "adamw", "lr": 3e-3, "weight_decay": 0.1},
                "embedding": {"optimizer": "sgd", "lr": 0.3, "momentum": 0.9},
                "norm": {"optimizer": "adam", "lr": 1e-3},
            },
            "schedule": {"warmup": 0.05, "decay": "cosine", "final_lr_fraction": 0.1},
            "grad_clip_norm": 1.0,
        }
    )
    assert transfer(config, Net(NARROW), Net(NARROW), rule) == config


def test_a_group_whose_tensors_need_different_multipliers_is_split_and_says_so():
    config = TrialConfig.from_dict(
        {
            "scheme": "module_type",
            "groups": {
                "linear": {"optimizer": "adamw", "lr": 0.004, "weight_decay": 0.1},
                "embedding": {"optimizer": "adamw", "lr": 0.01},
                "norm": {"optimizer": "adamw", "lr": 0.001},
            },
            "schedule": {"warmup": 0.1, "decay": "linear"},
        }
    )
    done = plan_transfer(config, Net(NARROW), Net(WIDE))
    assert done.split == ("linear",) and done.config.scheme.name == "by_name"
    assert any("group 'linear'" in note and "split" in note for note in done.notes)
    groups = done.config.to_dict()["groups"]
    assert groups["linear.hidden+readout"] == {
        "optimizer": "adamw",
        "lr": 0.001,
        "weight_decay": 0.1,
    }
    assert groups["linear.input+vector"] == {"optimizer": "adamw", "lr": 0.004, "weight_decay": 0.1}
    assert groups["embedding"]["lr"] == 0.01 and groups["norm"]["lr"] == 0.001
    assert done.config.schedule == config.schedule
    # the exported config rebuilds the target's optimizer, each tensor at its lr
    wide = Net(WIDE)
    optimizer, _ = groupwise.build(wide, done.config.to_dict(), total_steps=10)
    lr_of = {
        id(p): group["initial_lr"] for group in optimizer.param_groups for p in group["params"]
    }
    expected = {
        t.name: (0.004, 0.01, 0.001)[("linear", "embedding", "norm").index(t.label)] * t.multiplier
        for t in done.tensors
    }
    for name, param in wide.named_parameters():
        assert lr_of[id(param)] == pytest.approx(expected[name]), name


def test_a_tied_output_layer_takes_the_smaller_multiplier_of_its_roles_and_is_told():
    """The transformer's head is its token embedding: an input (x1 under Adam) and a readout
    (x 1/n_in): it takes 1/2, the one that keeps the logits stable, and its group splits from
    the position embedding, which stays at x1."""
    proxy, target = (resolve_task("tiny_transformer", {"width": w}).make_model() for w in (32, 64))
    config = TrialConfig.from_dict(
        {
            "scheme": "role",
            "groups": {
                r: {"optimizer": "adamw", "lr": 0.01} for r in ("matrix", "embedding", "vector")
            },
        }
    )
    done = plan_transfer(config, proxy, target)
    lrs = {label: g.hyperparameters["lr"] for label, g in done.config.groups.items()}
    assert lrs == {
        "matrix": 0.005,
        "embedding.readout": 0.005,  # tok.weight, the head
        "embedding.input": 0.01,  # pos.weight
        "vector": 0.01,
    }
    said = "head.weight (readout) is tied to tok.weight (input): one tensor in several roles"
    assert any(note.startswith(said) for note in done.notes), done.notes


ADAMW = TrialConfig.from_dict({"scheme": "single", "groups": {"all": {"optimizer": "adamw"}}})


class Deeper(Net):
    def __init__(self, w: int) -> None:
        super().__init__(w)
        self.extra = nn.Linear(w, w)


class Flat(Net):
    def __init__(self, w: int) -> None:
        super().__init__(w)
        self.hidden = nn.Conv1d(w, w, 1)  # type: ignore[assignment]


class OnRoot(Net):
    def __init__(self, w: int) -> None:
        super().__init__(w)
        self.table = nn.Parameter(torch.zeros(16, w))


@pytest.mark.parametrize(
    ("proxy", "target", "config", "rule", "said"),
    [
        (
            Net(8),
            Deeper(32),
            ADAMW,
            "sp-per-layer",
            "another architecture (only in the target: [extra.weight, extra.bias])",
        ),
        (
            Net(8),
            Flat(32),
            ADAMW,
            "sp-per-layer",
            "hidden.weight is 2-D in the proxy (8, 8) and 3-D in the target",
        ),
        (OnRoot(8), OnRoot(32), ADAMW, "sp-per-layer", "the role of table (16, 8) cannot be told"),
        (
            Net(8),
            Net(32),
            TrialConfig.from_dict(
                {"scheme": "single", "groups": {"all": {"optimizer": "adadelta"}}}
            ),
            "mup",
            "optimizer 'adadelta' has no width rule",
        ),
        (Net(8), Net(32), ADAMW, "mu-p", "unknown transfer rule 'mu-p'"),
    ],
)
def test_refusals_are_one_line(proxy, target, config, rule, said):
    with pytest.raises(ConfigError) as info:
        transfer(config, proxy, target, rule)
    assert said in str(info.value) and "\n" not in str(info.value)


def test_a_tensor_on_the_model_itself_transfers_once_its_kind_is_named():
    config = ADAMW
    done = plan_transfer(config, OnRoot(8), OnRoot(32), roles={"table": "input"})
    assert {t.name: t.kind for t in done.tensors}["table"] == "input"


@pytest.mark.parametrize("task", ["tabular_mlp", "tiny_transformer"])
def test_width_scalable_tasks_refuse_a_bad_parametrization(task):
    with pytest.raises(TaskError, match="parametrization: 'mu' is not one of standard, mup"):
        resolve_task(task, {"parametrization": "mu"})
    with pytest.raises(TaskError, match="task option width: must be a positive integer"):
        resolve_task(task, {"width": 0})


def test_tabular_mlp_trains_on_generated_data_and_refuses_an_unknown_set():
    task = resolve_task("tabular_mlp", {"dataset": "synthetic", "width": 16})
    assert task.data.val_x.shape == (5000, 30) and set(task.data.train_y.tolist()) == {0, 1, 2, 3}
    assert task.make_model()(task.data.val_x[:2]).shape == (2, 4)
    with pytest.raises(TaskError, match="dataset: 'covtype' is not one of cancer, synthetic"):
        resolve_task("tabular_mlp", {"dataset": "covtype"})


def test_mup_models_compute_the_standard_model_at_the_base_width():
    """μP changes how the model scales, not what it computes at its base width (the
    attention module differs, so the transformer is compared through the MLP)."""
    torch.manual_seed(0)
    standard = resolve_task("tabular_mlp", {"width": 32, "base_width": 32}).make_model()
    torch.manual_seed(0)
    mup = resolve_task(
        "tabular_mlp", {"width": 32, "base_width": 32, "parametrization": "mup"}
    ).make_model()
    assert mup.head.mult == 1.0 and not hasattr(standard.head, "mult")
    assert not mup.head.weight.any()  # μP's readout starts at zero
    wide = resolve_task(
        "tabular_mlp", {"width": 128, "base_width": 32, "parametrization": "mup"}
    ).make_model()
    assert wide.head.mult == 0.25
    x = torch.randint(0, 100, (2, 8))
    t = resolve_task("tiny_transformer", {"width": 64, "parametrization": "mup"}).make_model()
    assert t(x).shape == (2, 8, 100)
    assert t.blocks[0].attn.scale == pytest.approx(1 / math.sqrt(16))


WIDTHS = [32, 64, 128, 256]


def test_the_coord_check_of_the_mup_transformer_is_flat_and_the_standard_one_grows():
    """Each layer's output scale after 4 AdamW steps at lr 1e-2: μP with its rule stays
    within 2x from width 32 to 256; the standard model at the same lr everywhere grows."""
    mup = coord_check(
        "tiny_transformer",
        WIDTHS,
        options={"parametrization": "mup", "base_width": 32},
        rule="mup",
    )
    assert mup.flat, mup.worst
    assert all(mup.growth(layer, step) < 2 for layer in mup.layers for step in range(1, 5))
    standard = coord_check("tiny_transformer", WIDTHS, rule="none")
    assert not standard.flat
    layer, growth = standard.worst
    assert growth > 4 and layer.startswith("blocks."), standard.worst
    # at init nothing was trained: the hidden layers start flat in both
    assert standard.growth("blocks.0.mlp.2", 0) < 2 and mup.growth("blocks.0.mlp.2", 0) < 2


def test_coord_check_from_the_cli_plots_and_refuses_in_one_line(tmp_path):
    cli = [sys.executable, "-m", "groupwise", "coord-check"]
    done = subprocess.run(
        [*cli, "tabular_mlp", "--widths", "16", "32", "64", "--rule", "none", "-o", "c.png"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "blocks.0.up" in done.stdout and "wrote c.png" in done.stdout
    assert matplotlib.image.imread(tmp_path / "c.png").shape[2] in (3, 4)
    for args, said in [
        (["tabular_mlp", "--widths", "64", "32"], "--widths: give two or more widths, increasing"),
        (["digits_mlp", "--widths", "32", "64"], "--width-option"),
        (["tabular_mlp", "--widths", "8", "16", "--rule", "mu"], "unknown transfer rule 'mu'"),
    ]:
        refused = subprocess.run(
            [*cli, *args], cwd=tmp_path, capture_output=True, text=True, env=subprocess_env()
        )
        assert refused.returncode == 2 and said in refused.stderr, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1


def test_option_pairs_are_read_as_yaml_and_a_bad_pair_is_one_line():
    from groupwise.registry import key_values

    assert key_values(
        ["width=512", "parametrization=mup", "l=[1, 2]", "s=a: b: c"], "--option"
    ) == {
        "width": 512,
        "parametrization": "mup",
        "l": [1, 2],
        "s": "a: b: c",  # not YAML: the text as given
    }
    with pytest.raises(ConfigError, match="--option: 'width': write KEY=VALUE"):
        key_values(["width"], "--option")
    bomb = "[&a [1,1,1,1,1,1,1,1,1,1],&b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a],[*b,*b,*b,*b,*b,*b,*b,*b]]"
    with pytest.raises(ConfigError, match="holds more than 100 values"):
        key_values([f"x={bomb}"], "option")
