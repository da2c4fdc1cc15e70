"""The read and launch commands against a service: its JSON answers as the records the local
commands return, so the CLI prints a remote study as it prints a local one."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from groupwise import _yaml
from groupwise.config import TrialConfig
from groupwise.errors import ConfigError, StudyError
from groupwise.remote._client import UnreachableError

if TYPE_CHECKING:  # each loads Optuna: only a command that needs one imports it
    from groupwise.analysis import BestTrial, Comparison, StudyStatus, StudySummary
    from groupwise.execution import Progress
    from groupwise.remote._client import Remote
    from groupwise.store import Tally

__all__ = [
    "Followed",
    "best_trials",
    "compared_studies",
    "comparison",
    "follow",
    "report",
    "study_names",
    "study_statuses",
    "submit",
    "tally_of",
    "transferred_config",
    "trial_config",
]


def submit(
    remote: Remote, document: dict[str, Any], *, trials: int | None, workers: int | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Submit a study document (its space inlined), with the CLI's overrides applied:
    (the document as sent, the server's answer)."""
    if trials is not None:
        document["budget"] = {**(document.get("budget") or {}), "trials": trials}
    if workers is not None:
        document["workers"] = {**(document.get("workers") or {}), "count": workers}
    return document, remote.submit(document)


@dataclass(frozen=True)
class Followed:
    """How a followed study ended, as the service said."""

    body: Mapping[str, Any]  # GET /studies/{name} at the end
    counts: Tally

    @property
    def failed(self) -> bool:
        return bool(self.body["state"] == "failed")


def follow(
    remote: Remote,
    name: str,
    budget: int | None,
    on_progress: Callable[[Progress], None],
    poll_s: float = 1.0,
) -> Followed:
    """Poll the study until its job ends, reporting its progress each time. A service that
    stops answering meanwhile is said in one line: the study is not lost with it."""
    from groupwise.execution import Progress
    from groupwise.store import FINAL

    try:
        while (body := remote.study(name))["state"] not in FINAL:
            on_progress(Progress(tally_of(body), budget, body.get("elapsed_s") or 0.0))
            time.sleep(poll_s)
    except UnreachableError as e:
        raise StudyError(
            f"lost the service while following study {name!r} ({e}); the study is not lost: "
            f"its job resumes when the server is back, and `groupwise status {name} --server "
            f"{remote.server}` (or the same `groupwise launch ... --server`) follows it then"
        ) from None
    return Followed(body, tally_of(body))


def tally_of(body: Mapping[str, Any]) -> Tally:
    """The counts a service answers with, as the one count's record."""
    from groupwise.store import Tally

    fields = {f.name for f in dataclasses.fields(Tally)}  # not "finished", a property
    return Tally(**{k: v for k, v in (body.get("counts") or {}).items() if k in fields})


def study_statuses(remote: Remote, study: str | None) -> list[StudyStatus]:
    """``groupwise status`` of one study, or of all (a queued job has no counts yet)."""
    from groupwise.analysis import StudyStatus

    names = [study] if study else [s["name"] for s in remote.get("/studies")]
    return [
        StudyStatus(
            study=body["name"],
            task=body["task"],
            metric=body["metric"],
            direction=body["direction"],
            counts=tally_of(body),
            fail_reasons=(),
        )
        for body in (remote.study(name) for name in names)
        if "counts" in body
    ]


def best_trials(remote: Remote, study: str, top: int) -> list[BestTrial]:
    """``groupwise best`` as the service answers it."""
    from groupwise.analysis import BestTrial

    document = remote.get(f"/studies/{quote(study)}/best", top=top)
    return [BestTrial.from_dict(d) for d in document.get("top", [document])]


def trial_config(remote: Remote, study: str, trial: int | None) -> TrialConfig:
    """A trial's config (default: the best), as ``groupwise export`` writes it."""
    text = remote.text(f"/studies/{quote(study)}/config", trial=trial)
    return TrialConfig.from_dict(_yaml.load(text), source=f"{remote.server} {study}")


def transferred_config(
    remote: Remote,
    study: str,
    trial: int | None,
    to_task: str,
    option: list[str],
    rule: str,
) -> tuple[TrialConfig, list[str]]:
    """``export --to-task`` as the service answers it: the config, and its comment lines
    (what it was carried from and to, then each note)."""
    text = remote.text(
        f"/studies/{quote(study)}/config", trial=trial, to_task=to_task, option=option, rule=rule
    )
    comments = [line[2:] for line in text.splitlines() if line.startswith("# ")]
    return TrialConfig.from_dict(_yaml.load(text), source=f"{remote.server} {study}"), comments


def study_names(remote: Remote) -> list[str]:
    """``groupwise studies``: every study the service knows, submitted or launched."""
    return [str(s["name"]) for s in remote.get("/studies")]


def comparison(remote: Remote, study: str, top: int | None) -> Comparison:
    """``groupwise compare STUDY`` as the service answers it (every view at once)."""
    from groupwise.analysis import (
        Comparison,
        GroupLr,
        OptimizerSummary,
        ScheduleSummary,
        SchemeSummary,
    )

    d = remote.get(f"/studies/{quote(study)}/compare", top=top)
    return Comparison(
        d["study"],
        d["metric"],
        d["direction"],
        tally_of(d),
        d["top"],
        tuple(SchemeSummary(**row) for row in d["by_scheme"]),
        tuple(OptimizerSummary(**row) for row in d["by_optimizer"]),
        tuple(GroupLr(**row) for row in d["lr"]),
        tuple(ScheduleSummary(**row) for row in d.get("by_schedule", [])),
    )


def compared_studies(remote: Remote, studies: list[str]) -> list[StudySummary]:
    """``groupwise compare BASELINE STUDY...`` as the service answers it."""
    from groupwise.analysis import StudySummary

    found = remote.get("/compare", study=studies)
    return [StudySummary(**row) for row in found["studies"]]


def report(remote: Remote, study: str, directory: Path) -> list[Path]:
    """``groupwise report``: the service makes it; its files are written into ``directory``."""
    import io
    import zipfile

    body = remote.request("GET", f"/studies/{quote(study)}/report")[1]
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot write the report to {directory}: {e.strerror or e}") from e
    written = []
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        for name in archive.namelist():
            target = directory / Path(name).name  # a flat folder: no path from the server
            target.write_bytes(archive.read(name))
            written.append(target)
    return written
