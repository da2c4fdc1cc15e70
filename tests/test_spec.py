"""Study and search-space files: the shipped ones validate; bad ones fail with file, key, value."""

from __future__ import annotations

from pathlib import Path

import pytest

from groupwise.errors import SpecError
from groupwise.plan import make_plan
from groupwise.studyfiles import (
    SearchSpace,
    StudySpec,
    read_search_space,
    read_study,
    read_study_document,
    validate_file,
)

ROOT = Path(__file__).parent.parent
SPACES = sorted((ROOT / "search_spaces").glob("*.yaml"))
STUDIES = sorted((ROOT / "studies").glob("*.yaml"))

GOOD_SPACE = """
schemes:
  - module_type
  - {name: depth, blocks: {low: 2, high: 3}}
optimizers:
  adamw: {}
  sgd: {lr: {low: 1.0e-3, high: 1.0, log: true}, momentum: 0.9}
"""


def write(tmp_path: Path, study: str, space: str = GOOD_SPACE) -> Path:
    (tmp_path / "space.yaml").write_text(space)
    path = tmp_path / "study.yaml"
    path.write_text(study)
    return path


def study_text(**overrides: str) -> str:
    fields = {
        "name": "t",
        "task": "digits_mlp",
        "search_space": "space.yaml",
        "budget": "{trials: 4}",
        **overrides,
    }
    return "\n".join(f"{k}: {v}" for k, v in fields.items() if v is not None) + "\n"


def test_shipped_files_exist():
    names = {p.stem for p in SPACES}
    assert {"seeds_mixed", "decay_split", "muon_split", "layerwise_decay", "broad"} <= names
    tasks = {read_study(p).task.name for p in STUDIES}
    assert {"char_rnn", "char_lstm", "digits_mlp", "digits_cnn", "tiny_transformer"} <= tasks
    assert (ROOT / "studies" / "quickstart.yaml").exists()


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.name)
def test_shipped_search_spaces_validate(path):
    assert isinstance(validate_file(path), SearchSpace)


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.name)
def test_shipped_studies_validate_and_plan(path):
    spec = validate_file(path)
    assert isinstance(spec, StudySpec)
    prepared = make_plan(spec)  # task, metric, partition facts, sampler, pruner
    assert prepared.facts.scheme_keys


def test_study_is_frozen_and_resolves_its_space(tmp_path):
    spec = read_study(write(tmp_path, study_text()))
    assert spec.search_space == (tmp_path / "space.yaml").resolve()
    assert spec.space.schemes[1].key == "depth"
    with pytest.raises(Exception, match="frozen"):
        spec.name = "other"  # type: ignore[misc]


def error(path: Path) -> str:
    with pytest.raises(SpecError) as info:
        read_study(path) if "task" in path.read_text() else read_search_space(path)
    return str(info.value)


def test_unknown_key_in_a_study(tmp_path):
    message = error(write(tmp_path, study_text(epochs="3")))
    assert message.startswith(
        f"{tmp_path / 'study.yaml'}: epochs: unknown key; allowed keys: name, "
    )
    assert "\n" not in message


def test_unknown_nested_key(tmp_path):
    message = error(write(tmp_path, study_text(training="{epochs: 3, epoch: 4}")))
    assert (
        ": training.epoch: unknown key; did you mean 'epochs'? "
        "(allowed keys: epochs, steps_per_epoch, batch_size, accumulate" in message
    )


@pytest.mark.parametrize("key", ["NUL", "Choices", "float", "list[int]"])
def test_an_unknown_key_shaped_like_a_pydantic_union_member_is_still_a_key(tmp_path, key):
    """pydantic names the union members it tried in an error's location ("Choices",
    "float", "list[...]"); a file's own unknown key of that shape is told as a key (a fuzzed
    request once made the line's writer fail on one: a 500 from the service)."""
    message = error(write(tmp_path, study_text(), space=GOOD_SPACE + f"{key!r}: {{}}\n"))
    assert f"space.yaml: {key}: unknown key; allowed keys: schemes, " in message, message


@pytest.mark.parametrize(
    ("overrides", "said"),
    [
        # a misspelt required key is one mistake: the unknown key, the missing one beside it
        ({"budget": None, "bugdet": "{trials: 3}"}, "bugdet: unknown key; did you mean 'budget'?"),
        ({"budget": "{trails: 3}"}, "budget.trails: unknown key; did you mean 'trials'?"),
    ],
)
def test_a_typo_in_a_key_says_did_you_mean_first(tmp_path, overrides, said):
    message = error(write(tmp_path, study_text(**overrides)))
    assert message.split(": ", 1)[1].startswith(said), message
    assert "more]" not in message and "\n" not in message


def test_one_wrong_value_is_one_problem_however_many_forms_it_could_take(tmp_path):
    """An inverted lr range: pydantic tries every form a hyperparameter may take (a range,
    a choice, a list, a value) and errs in each; that is one problem, said by the range."""
    space = (ROOT / "search_spaces" / "per_group.yaml").read_text()
    inverted = space.replace("lr: {low: 1.0e-4, high: 3.0e-2", "lr: {low: 3.0e-2, high: 1.0e-4", 1)
    message = error(write(tmp_path, study_text(), space=inverted))
    assert message.endswith(
        "space.yaml: optimizers.adamw.lr: low 0.03 is above high 0.0001; swap them "
        "(got {'high': 0.0001, 'log': True, 'low': 0.03})"
    ), message


def test_low_above_high(tmp_path):
    space = GOOD_SPACE.replace(
        "{low: 1.0e-3, high: 1.0, log: true}", "{low: 1.0, high: 1.0e-3, log: true}"
    )
    message = error(write(tmp_path, study_text(), space))
    assert "space.yaml: optimizers.sgd.lr: low 1.0 is above high 0.001; swap them" in message


def test_unknown_scheme(tmp_path):
    message = error(
        write(tmp_path, study_text(), GOOD_SPACE.replace("module_type", "module_types"))
    )
    assert (
        "space.yaml: schemes.0: unknown partition scheme 'module_types'; must be one of ["
        in message
    )


def test_unknown_optimizer(tmp_path):
    message = error(write(tmp_path, study_text(), GOOD_SPACE.replace("adamw: {}", "adamx: {}")))
    assert "space.yaml: optimizers: unknown optimizer 'adamx'; must be one of [adadelta," in message


def test_unknown_hyperparameter(tmp_path):
    message = error(
        write(tmp_path, study_text(), GOOD_SPACE.replace("momentum: 0.9", "momentun: 0.9"))
    )
    assert "optimizer 'sgd' has no hyperparameter 'momentun'" in message


def test_unknown_scheme_option(tmp_path):
    message = error(write(tmp_path, study_text(), GOOD_SPACE.replace("blocks:", "block:")))
    assert "scheme 'depth' takes options [blocks]; got option 'block'" in message


def test_missing_search_space_file(tmp_path):
    message = error(write(tmp_path, study_text(search_space="nope.yaml")))
    assert message.startswith(f"{tmp_path / 'study.yaml'}: search_space: file not found: nope.yaml")


def test_missing_study_file(tmp_path):
    with pytest.raises(SpecError, match="missing.yaml: file not found"):
        read_study(tmp_path / "missing.yaml")


def test_bad_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "name: t\ntask: [digits\n")
    with pytest.raises(SpecError, match=r"study.yaml: not valid YAML \(line \d+, column \d+\)"):
        read_study(path)


def test_value_out_of_range(tmp_path):
    message = error(write(tmp_path, study_text(workers="{count: 0}")))
    assert "workers.count: Input should be greater than or equal to 1 (got 0)" in message


def test_budget_needs_an_end(tmp_path):
    message = error(write(tmp_path, study_text(budget="{}")))
    assert "budget: give trials, time_s or both" in message


def test_bad_direction(tmp_path):
    message = error(write(tmp_path, study_text(objective="{metric: val_loss, direction: down}")))
    assert "objective.direction: Input should be 'minimize' or 'maximize' (got 'down')" in message


def test_layerwise_needs_depth_only(tmp_path):
    space = GOOD_SPACE + "sharing: {lr: layerwise}\n"
    message = error(write(tmp_path, study_text(), space))
    assert "sharing.lr 'layerwise' ties the lrs of depth blocks" in message
    assert "['module_type']" in message


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"task": "digits_mpl"}, "task: unknown task 'digits_mpl' (did you mean 'digits_mlp'?)"),
        ({"task": "nowhere.module:fn"}, "cannot import module 'nowhere.module'"),
        ({"task": "user_tasks:missing"}, "module 'user_tasks' has no function 'missing'"),
        ({"task": "user_tasks:not_a_task"}, "returned dict; a task function must return"),
        (
            {"task": "{name: digits_mlp, options: {hiden: 3}}"},
            "task 'digits_mlp' takes options [hidden]",
        ),
        ({"task": "{name: digits_mlp, options: {hidden: -3}}"}, "task: building the model failed"),
        (
            {"objective": "{metric: val_acc}"},
            "objective.metric: task 'digits_mlp' reports [val_loss, val_accuracy]",
        ),
        ({"sampler": "{name: tpee}"}, "sampler.name: unknown sampler 'tpee' (did you mean 'tpe'?)"),
        (
            {"sampler": "{name: tpe, options: {n_startup: 3}}"},
            "got option 'n_startup' (did you mean 'n_startup_trials'?)",
        ),
        ({"pruner": "{name: medain}"}, "pruner.name: unknown pruner 'medain'"),
    ],
)
def test_plan_errors_name_the_study_key(tmp_path, overrides, fragment):
    spec = read_study(write(tmp_path, study_text(**overrides)))
    with pytest.raises(SpecError) as info:
        make_plan(spec)
    assert str(info.value).startswith(str(tmp_path / "study.yaml"))
    assert fragment in str(info.value)


def test_muon_only_space_cannot_cover_vectors(tmp_path):
    space = "schemes: [module_type]\noptimizers: {muon: {}}\n"
    spec = read_study(write(tmp_path, study_text(), space))
    with pytest.raises(SpecError, match="group 'linear' can take none of the allowed optimizers"):
        make_plan(spec)


RELATIVE_SPACE = """
schemes: [single, role]
optimizers: {adamw: {}, muon: {}}
sharing: {relative: {base: [adamw], override: [muon]}}
"""


@pytest.mark.parametrize(
    ("space", "sampler", "expected"),
    [
        (RELATIVE_SPACE, None, "staged"),  # the base first: the relative space's default
        (GOOD_SPACE, None, "tpe"),  # no shared base to tune first
        (RELATIVE_SPACE, "tpe", "tpe"),  # a named sampler is always kept
        (RELATIVE_SPACE, "null", "staged"),
    ],
)
def test_a_study_that_names_no_sampler_gets_the_one_its_space_calls_for(
    tmp_path, space, sampler, expected
):
    spec = read_study(write(tmp_path, study_text(sampler=sampler), space))
    assert spec.sampler.name == expected
    assert make_plan(spec).sampler.name == expected


def test_the_recommended_space_is_searched_base_first_by_default(tmp_path):
    per_group = (ROOT / "search_spaces" / "per_group.yaml").read_text()
    spec = read_study(write(tmp_path, study_text(), per_group))
    assert spec.sampler.name == "staged" and spec.pruner.name == "median"
    # the same default for a study sent to the service, by name or inline
    sent = {"name": "t", "task": "digits_mlp", "budget": {"trials": 4}}
    for space in ("per_group.yaml", {"schemes": ["single"], "optimizers": {"adamw": {}}}):
        document = {**sent, "search_space": space}
        spec = read_study_document(document, where="POST /studies", spaces=ROOT / "search_spaces")
        assert spec.sampler.name == ("staged" if space == "per_group.yaml" else "tpe")


def test_a_key_with_a_line_break_is_named_quoted_on_one_line():
    """Found by the service's fuzzing: an optimizer named by a line break (a key JSON and YAML
    both allow) broke the error's one line. The key is quoted, as the file holds it."""
    document = {
        "name": "t",
        "task": "digits_mlp",
        "budget": {},
        "search_space": {
            "schemes": ["single"],
            "optimizers": {"\n": {"": [{"low": 0, "high": 1}, {"low": 1, "high": 0}]}},
        },
    }
    with pytest.raises(SpecError) as caught:
        read_study_document(document, where="POST /studies", spaces=ROOT / "search_spaces")
    line = str(caught.value)
    assert "\n" not in line and "\r" not in line
    assert "optimizers.'\\n'.''.1: low 1 is above high 0" in line


@pytest.mark.parametrize(
    ("training", "space_extra", "fragment"),
    [
        ("{precision: fp8}", "", "training.precision: Input should be 'fp32', 'bf16' or 'fp16'"),
        ("{accumulate: 0}", "", "training.accumulate: Input should be greater than or equal to 1"),
        ("{grad_clip_norm: -1}", "", "training.grad_clip_norm: Input should be greater than 0"),
        (
            "{grad_clip_norm: 1.0}",
            "schedule: {grad_clip_norm: {low: 0.1, high: 10, log: true}}\n",
            "grad_clip_norm is given twice",
        ),
        (None, "schedule: {decay: exponential}\n", "decay 'exponential' is not one of"),
        (None, "schedule: {warmup: {low: 0.0, high: 1.5}}\n", "warmup as a fraction"),
        (None, "schedule: {decay: cosine, final_lr_fraction: 3}\n", "final_lr_fraction must lie"),
        (None, "schedule: {warmpu: 0.1}\n", "schedule.warmpu: unknown key; did you mean 'warmup'?"),
    ],
)
def test_bad_training_options_and_schedules_are_one_line(tmp_path, training, space_extra, fragment):
    message = error(write(tmp_path, study_text(training=training), space=GOOD_SPACE + space_extra))
    assert fragment in message and "\n" not in message, message


def test_training_options_and_a_schedule_read_back():
    from groupwise.studyfiles import read_study

    study = read_study(ROOT / "studies" / "quickstart.yaml")
    assert study.training.precision in ("fp32", "bf16", "fp16") and study.training.accumulate >= 1
