"""Each scheme's labels on concrete models, as DESIGN.md's table states them."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import zoo
from groupwise import Scheme, available_schemes, partition, register_scheme, summarize
from groupwise.errors import PartitionError
from groupwise.partition._depth import balanced_cuts


def test_registry_has_the_contract_schemes():
    assert {"single", "module_type", "decay_split", "role", "depth", "by_name"} <= set(
        available_schemes()
    )


def test_single(my_model):
    assert partition(my_model, "single") == {"all": [n for n, _ in my_model.named_parameters()]}


def test_module_type_on_seed_000(my_model):
    assert partition(my_model, "module_type") == {
        "embedding": ["embedding.weight"],
        "recurrent": ["rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0", "rnn.bias_hh_l0"],
        "linear": ["fc.weight", "fc.bias"],
    }


def test_module_type_on_transformer_covers_norm_and_other():
    groups = partition(zoo.TinyTransformer(), "module_type")
    assert list(groups) == ["embedding", "linear", "norm", "other"]
    assert groups["embedding"] == ["tok.weight"]  # the tied head weight lives here, once
    assert "pos" in groups["other"] and "blocks.0.attn.in_proj_weight" in groups["other"]
    assert "blocks.0.attn.out_proj.weight" in groups["linear"]  # a Linear subclass
    assert all(n.split(".")[-2].startswith("ln") for n in groups["norm"])


def test_module_type_conv_and_batchnorm():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.GRU(4, 4), nn.Linear(4, 2))
    assert partition(model, "module_type") == {
        "recurrent": ["2.weight_ih_l0", "2.weight_hh_l0", "2.bias_ih_l0", "2.bias_hh_l0"],
        "conv": ["0.weight", "0.bias"],
        "linear": ["3.weight", "3.bias"],
        "norm": ["1.weight", "1.bias"],
    }


def test_decay_split_excludes_biases_norms_and_scalars():
    groups = partition(zoo.TinyTransformer(), "decay_split")
    params = dict(zoo.TinyTransformer().named_parameters())
    assert all(params[n].ndim >= 2 for n in groups["decay"])
    assert "tok.weight" in groups["decay"] and "pos" in groups["decay"]
    assert all(params[n].ndim < 2 or ".ln" in n for n in groups["no_decay"])
    assert "blocks.0.ln1.weight" in groups["no_decay"]


def test_decay_split_can_exempt_embeddings_as_an_option():
    """nanoGPT and the HF Trainer decay embeddings (the default); ``embeddings: no_decay``
    exempts the tables and the learned positional embedding with the biases and norms."""
    model = zoo.TinyTransformer()
    exempt = partition(model, "decay_split", embeddings="no_decay")
    assert {"tok.weight", "pos"} <= set(exempt["no_decay"])
    assert "blocks.0.mlp.0.weight" in exempt["decay"] and "tok.weight" not in exempt["decay"]
    default = partition(model, "decay_split")
    assert default == partition(model, "decay_split", embeddings="decay")
    assert set(default["decay"]) - set(exempt["decay"]) == {"tok.weight", "pos"}
    with pytest.raises(PartitionError, match=r"embeddings must be one of \[decay, no_decay\]"):
        partition(model, "decay_split", embeddings="none")


def test_role_is_the_muon_split():
    model = nn.Sequential(
        nn.Embedding(10, 4), nn.Linear(4, 8), nn.LayerNorm(8), nn.Conv1d(8, 8, 1), nn.Linear(8, 3)
    )
    assert partition(model, "role") == {
        "matrix": ["1.weight"],
        "embedding": ["0.weight"],
        "head": ["4.weight", "4.bias"],
        "vector": ["1.bias", "2.weight", "2.bias", "3.bias"],
        "other": ["3.weight"],
    }


def test_role_head_regex_and_tied_head():
    model = zoo.TinyTransformer()
    default = partition(model, "role")
    assert "head" not in default  # the head's only weight is tied to the embedding
    custom = partition(model, "role", head=r"^blocks\.1\.mlp\.2\.")
    assert custom["head"] == ["blocks.1.mlp.2.weight", "blocks.1.mlp.2.bias"]


def test_depth_cuts_top_level_children_by_parameter_count(my_model):
    # embedding 800, rnn 544, fc 17: two blocks -> [embedding] [rnn, fc]
    assert partition(my_model, "depth", blocks=2) == {
        "block0": ["embedding.weight"],
        "block1": [
            "rnn.weight_ih_l0",
            "rnn.weight_hh_l0",
            "rnn.bias_ih_l0",
            "rnn.bias_hh_l0",
            "fc.weight",
            "fc.bias",
        ],
    }
    assert list(partition(my_model, {"name": "depth", "blocks": 3})) == [
        "block0",
        "block1",
        "block2",
    ]


def test_depth_root_parameters_join_block0_and_parameterless_children_are_skipped():
    # layers: tok, blocks.0, blocks.1 (the ModuleList seen through), ln_f; head is tied (no
    # parameters of its own); pos is registered on the root module
    model = zoo.TinyTransformer()
    groups = partition(model, "depth", blocks=4)
    assert groups["block0"][0] == "pos"
    assert set(groups) == {"block0", "block1", "block2", "block3"}
    with pytest.raises(Exception, match=r"only 4 layers .*\[tok, blocks.0, blocks.1, ln_f\]"):
        partition(model, "depth", blocks=5)


def layer_of(name: str) -> str:
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] == "blocks" else parts[0]


def test_depth_sees_through_a_modulelist_to_the_transformer_layers():
    """A transformer's layers live in a ModuleList; layer-wise decay must split them, in
    order: embeddings first, then each layer, then the final norm."""
    groups = partition(zoo.TinyTransformer(layers=4), "depth", blocks=3)
    order = [layer_of(n) for label in ("block0", "block1", "block2") for n in groups[label]]
    firsts = list(dict.fromkeys(order))
    assert firsts == ["pos", "tok", "blocks.0", "blocks.1", "blocks.2", "blocks.3", "ln_f"]
    holding = {label: {layer_of(n) for n in names} for label, names in groups.items()}
    assert {"pos", "tok"} <= holding["block0"]
    assert sum(any(x.startswith("blocks.") for x in h) for h in holding.values()) >= 2


def test_depth_sees_through_nested_sequentials():
    model = nn.Sequential(
        nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4)), nn.Linear(4, 2)
    )
    assert partition(model, "depth", blocks=3) == {
        "block0": ["0.0.weight", "0.0.bias"],
        "block1": ["0.2.weight", "0.2.bias"],
        "block2": ["1.weight", "1.bias"],
    }


class _Encoder(nn.Module):
    """A user's wrapper: no parameters of its own, its layers in a ModuleList."""

    def __init__(self, d: int, n: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(d, 2, 2 * d, dropout=0.0, batch_first=True) for _ in range(n)
        )


class _Block(nn.Module):
    """A block whose feed-forward is a Sequential: one layer, not three."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))


def test_depth_sees_through_modules_that_wrap_the_layer_stack():
    """nn.TransformerEncoder and a user's encoder class hold the layers in a ModuleList behind
    a module with no parameters of its own; depth must still cut between those layers (before,
    the whole encoder was one layer and layer-wise decay could not split it)."""
    torch_encoder = nn.TransformerEncoder(
        nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), 3, enable_nested_tensor=False
    )
    model = nn.ModuleDict({"embed": nn.Embedding(10, 8), "body": torch_encoder})
    with pytest.raises(Exception, match=r"only 4 layers .*\[embed, body.layers.0, body.layers.1, "):
        partition(model, "depth", blocks=5)
    wrapped = nn.Sequential(nn.Embedding(10, 8), _Encoder(8, 3), nn.Linear(8, 10))
    groups = partition(wrapped, "depth", blocks=5)
    assert groups["block0"] == ["0.weight"] and groups["block4"] == ["2.weight", "2.bias"]
    assert all(n.startswith(f"1.layers.{i - 1}.") for i in (1, 2, 3) for n in groups[f"block{i}"])


def test_depth_keeps_a_stack_element_whole_whatever_it_holds():
    model = nn.Sequential(nn.Embedding(10, 8), nn.ModuleList(_Block(8) for _ in range(2)))
    with pytest.raises(Exception, match=r"only 3 layers .*\[0, 1.0, 1.1\]"):
        partition(model, "depth", blocks=4)


def test_role_of_a_model_that_is_one_layer_needs_no_note():
    """An nn.Linear as the whole model: its weight is the head, and there is no 'registered on
    the model itself' guess to report."""
    from groupwise.partition import partition_with_notes

    groups, notes = partition_with_notes(nn.Linear(4, 2), "role")
    assert groups == {"head": ["weight", "bias"]}
    assert notes == []


def test_role_puts_a_root_level_matrix_with_the_embeddings_and_says_why():
    from groupwise.partition import partition_with_notes

    groups, notes = partition_with_notes(zoo.TinyTransformer(), "role")
    assert "pos" in groups["embedding"] and "pos" not in groups["matrix"]
    assert any("'pos'" in note and "cannot be told" in note for note in notes)


def test_depth_on_deep_mlp_gives_equal_blocks():
    groups = partition(zoo.deep_mlp(24), "depth", blocks=24)
    assert [len(v) for v in groups.values()] == [2] * 24


@pytest.mark.parametrize(
    ("sizes", "k", "expected"),
    [
        ([5, 5, 5, 5], 2, [0, 2, 4]),
        ([10, 1, 1, 1, 1, 1], 2, [0, 1, 6]),
        ([1, 1, 10], 2, [0, 2, 3]),
        ([3], 1, [0, 1]),
        ([1, 2, 3, 4], 4, [0, 1, 2, 3, 4]),
    ],
)
def test_balanced_cuts(sizes, k, expected):
    assert balanced_cuts(sizes, k) == expected


def test_balanced_cuts_is_optimal_against_brute_force():
    import itertools
    import random

    rng = random.Random(0)
    for _ in range(200):
        sizes = [rng.randint(1, 50) for _ in range(rng.randint(1, 7))]
        k = rng.randint(1, len(sizes))
        best = min(
            sum(sum(sizes[a:b]) ** 2 for a, b in itertools.pairwise([0, *cut, len(sizes)]))
            for cut in itertools.combinations(range(1, len(sizes)), k - 1)
        )
        cuts = balanced_cuts(sizes, k)
        assert sum(sum(sizes[a:b]) ** 2 for a, b in itertools.pairwise(cuts)) == best


def test_by_name_first_match_wins_and_rest(my_model):
    groups = partition(
        my_model, "by_name", patterns={"bias": r"bias", "rnn": r"^rnn\.", "emb": "embedding"}
    )
    assert groups == {
        "bias": ["rnn.bias_ih_l0", "rnn.bias_hh_l0", "fc.bias"],
        "rnn": ["rnn.weight_ih_l0", "rnn.weight_hh_l0"],
        "emb": ["embedding.weight"],
        "rest": ["fc.weight"],
    }


def test_frozen_parameters_appear_nowhere(my_model):
    my_model.rnn.requires_grad_(False)
    for scheme in ("single", "module_type", "decay_split", "role"):
        names = [n for v in partition(my_model, scheme).values() for n in v]
        assert not any(n.startswith("rnn.") for n in names)
    assert "recurrent" not in partition(my_model, "module_type")  # empty labels are left out


def test_user_scheme_joins_the_registry_and_is_checked(my_model, monkeypatch):
    from groupwise.partition import _base

    monkeypatch.setattr(_base.SCHEMES, "_entries", dict(_base.SCHEMES._entries))

    @register_scheme
    class FirstHalf(Scheme):
        name = "test_first_half"
        labels = ("first", "second")

        def assign(self, model, params):
            half = len(params) // 2
            return {
                "first": [p.name for p in params[:half]],
                "second": [p.name for p in params[half:]],
            }

    assert list(partition(my_model, "test_first_half")) == ["first", "second"]

    @register_scheme
    class Careless(Scheme):
        name = "test_careless"

        def assign(self, model, params):
            return {"some": [params[0].name]}

    with pytest.raises(Exception, match="must label every trainable parameter exactly once"):
        partition(my_model, "test_careless")


def test_summary_counts_tensors_params_and_shapes(my_model):
    summary = summarize(my_model, partition(my_model, "module_type"))
    rows = {r.label: r for r in summary.rows}
    assert (rows["recurrent"].tensors, rows["recurrent"].params) == (4, 4 * 16 * 16 // 2 + 2 * 16)
    assert rows["recurrent"].shape_text() == "2x(16, 16), 2x(16,)"
    assert summary.total_params == sum(p.numel() for p in my_model.parameters())
    assert "embedding" in str(summary) and "total" in str(summary)


def test_the_model_is_not_touched(my_model):
    before = {n: p.detach().clone() for n, p in my_model.named_parameters()}
    for scheme in ("single", "module_type", "decay_split", "role", "depth"):
        partition(my_model, scheme)
    assert all(torch.equal(before[n], p) for n, p in my_model.named_parameters())
