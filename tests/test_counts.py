"""One count: the progress bar, `groupwise status`, `compare` and the report all count a study
through groupwise.store.tally, so they agree by construction. Here on a real study that has
complete, pruned, failed and retried trials."""

from __future__ import annotations

import re

import optuna
import pytest

from groupwise.analysis import compare, status_table, study_status, write_report
from groupwise.execution import launch
from groupwise.store import RETRIED_ATTR, tally
from groupwise.studyfiles import read_study

pytestmark = pytest.mark.usefixtures("ray_local")

SPACE = "schemes: [single]\noptimizers:\n  adamw: {lr: {low: 1.0e-3, high: 3.0e-2, log: true}}\n"


def test_progress_status_compare_and_report_agree(tmp_path, storage_url):
    (tmp_path / "space.yaml").write_text(SPACE)
    path = tmp_path / "mixed.yaml"
    path.write_text(
        "name: mixed\n"
        f"task: {{name: 'user_tasks:mixed', options: {{marker: '{tmp_path / 'lost.pid'}'}}}}\n"
        "search_space: space.yaml\nbudget: {trials: 9}\ntraining: {epochs: 3, batch_size: 32}\n"
        "sampler: random\n"
        "pruner: {name: median, options: {n_startup_trials: 1, n_warmup_steps: 0}}\n"
        "workers: {count: 1}\nfaults: {max_retries: 2}\nseed: 0\n"
    )
    seen = []
    result = launch(read_study(path), storage=storage_url, on_progress=seen.append)

    trials = optuna.load_study(study_name="mixed", storage=storage_url).get_trials()
    by_hand = {
        "retried": sum(bool(t.user_attrs.get(RETRIED_ATTR)) for t in trials),
        "failed": sum(
            t.state.name == "FAIL" and not t.user_attrs.get(RETRIED_ATTR) for t in trials
        ),
        "pruned": sum(t.state.name == "PRUNED" for t in trials),
        "complete": sum(t.state.name == "COMPLETE" for t in trials),
    }
    assert all(by_hand.values()), by_hand  # the study really has every kind
    counts = tally(trials, "minimize")
    assert {k: getattr(counts, k) for k in by_hand} == by_hand
    assert counts.finished == 9 == result.progress.finished

    assert result.progress.counts == counts  # the progress bar's last word
    assert seen[-1].counts == counts
    status = study_status(storage_url, "mixed")[0]
    assert status.counts == counts
    comparison = compare("mixed", storage_url)
    assert comparison.counts == counts
    per_scheme = comparison.by_scheme
    assert sum(s.complete for s in per_scheme) == counts.complete
    assert sum(s.pruned for s in per_scheme) == counts.pruned
    assert sum(s.failed for s in per_scheme) == counts.failed
    page = write_report("mixed", tmp_path / "report", storage_url).page.read_text()
    assert status_table([status]).to_html() in page
    cells = re.findall(r"<td>([^<]*)</td>", status_table([status]).to_html())
    shown = (counts.complete, counts.pruned, counts.failed, counts.retried, counts.replayed)
    assert cells[3:10] == [str(n) for n in (*shown, counts.seeded, counts.running)]
