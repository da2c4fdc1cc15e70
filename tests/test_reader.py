"""StudyReader: a database opened once, each study mirrored after its first read and brought up
to date before every later one, against a writer in another connection, both backends."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from groupwise.errors import StudyError
from groupwise.store import StudyReader, open_storage, open_study
from test_storage_contract import snapshot

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_every_read_sees_what_was_written_since(storage_url):
    writer = optuna.create_study(study_name="s", storage=open_storage(storage_url, create=True))
    running = writer.ask()
    writer.tell(writer.ask(), 1.0)
    reader = StudyReader(storage_url)
    assert snapshot(reader.study("s").get_trials()) == snapshot(writer.get_trials())

    running.set_user_attr("groupwise.reason", "late")  # the unfinished trial changes...
    running.report(0.5, 1)
    writer.tell(running, 0.25)  # ...and finishes
    writer.tell(writer.ask(), state=TrialState.PRUNED)  # a new one
    writer.set_user_attr("k", "v")
    read = reader.study("s")
    assert snapshot(read.get_trials()) == snapshot(writer.get_trials())
    assert read.best_trial.number == running.number
    assert snapshot(read.get_trials()) == snapshot(open_study("s", storage_url).get_trials())


@pytest.mark.parametrize("read_between", [True, False], ids=["read-between", "unseen"])
def test_a_study_deleted_and_made_again_is_read_anew(storage_url, read_between):
    """SQLite gives the new study (and its trials) the ids of the old: the reader must still
    tell them apart, whether or not it read while the study was gone."""
    backend = open_storage(storage_url, create=True)
    first = optuna.create_study(study_name="s", storage=backend)
    for value in (3.0, 2.0, 1.0):
        first.tell(first.ask(), value)
    reader = StudyReader(storage_url)
    assert len(reader.study("s").get_trials()) == 3

    optuna.delete_study(study_name="s", storage=backend)
    if read_between:
        with pytest.raises(StudyError, match=r"no study 's' in .*; studies there: \[\]"):
            reader.study("s")
    again = optuna.create_study(study_name="s", storage=backend, direction="maximize")
    again.tell(again.ask(), 7.0)
    read = reader.study("s")
    assert [t.value for t in read.get_trials()] == [7.0]
    assert read.direction == optuna.study.StudyDirection.MAXIMIZE
    assert reader.names() == ["s"]


@pytest.mark.parametrize("call", ["status", "compare"])
def test_reading_several_studies_from_a_url_opens_the_database_once(tmp_path, monkeypatch, call):
    from groupwise import analysis
    from groupwise.store import _reader

    url = f"sqlite:///{tmp_path}/g.db"
    names = ["a", "b", "c"]
    for name in names:
        study = optuna.create_study(study_name=name, storage=open_storage(url, create=True))
        study.tell(study.ask(), 1.0)
    opens = []
    real = _reader.open_storage
    monkeypatch.setattr(_reader, "open_storage", lambda *a, **k: opens.append(a) or real(*a, **k))
    if call == "status":
        assert [s.study for s in analysis.study_status(url)] == names
    else:
        assert [s.study for s in analysis.compare_studies(names, url)] == names
    assert len(opens) == 1
