"""The runs under a folder: one summary each, newest first, and which run a command should use."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gapdemo.runs.files import has_models, is_run_folder, read_config, read_epoch_metrics, read_status
from gapdemo.runs.ids import is_run_id
from gapdemo.runs.trust import RunFileError, is_link, shown_name


@dataclass
class RunSummary:
    """One row of the run listing."""

    run_id: str
    run_dir: Path
    state: str  # a training.JobState value; 'interrupted' when the writer died mid-run
    message: str
    dataset: str
    backends: list[str]
    epochs_completed: int
    epochs: int
    best_val_accuracy: dict[str, float] = field(default_factory=dict)
    created: str = ""

    def to_dict(self) -> dict:
        values = dict(self.__dict__)
        values["run_dir"] = str(self.run_dir)
        return values

def summarize_run(run_dir: Path) -> RunSummary | None:
    """The run's row of the listing; None when the folder holds no config.json.

    Raises:
        RunFileError when a file is past its size cap; ValueError (TypeError, AttributeError) when config.json,
        status.json or metrics.csv do not hold what gapdemo writes (scan_runs turns both into one sentence).
    """
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    if not config:
        return None
    status = read_status(run_dir)
    data, model, train = (_section(config, name) for name in ("data", "model", "train"))
    metrics = read_epoch_metrics(run_dir)
    best = {}
    if len(metrics):
        best = {str(b): float(v) for b, v in metrics.groupby("backend")["val_accuracy"].max().items()}
    backends = model.get("backends", [])
    if not isinstance(backends, list) or not all(isinstance(name, str) for name in backends):
        raise ValueError("the back-ends are no list of names")
    return RunSummary(
        run_id=run_dir.name, run_dir=run_dir, state=_text(status.get("state", "unknown")),
        message=_text(status.get("message", "")), dataset=_text(data.get("dataset", "?")), backends=backends,
        epochs_completed=_whole(status.get("epochs_completed", 0)), epochs=_whole(train.get("epochs", 0)),
        best_val_accuracy=best, created=_text(status.get("created", "")),
    )


def _section(config: dict, name: str) -> dict:
    value = config.get(name, {})
    if not isinstance(value, dict):
        raise ValueError(f"config.json's {name} is no object")
    return value


def _text(value) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is no text")
    return value


def _whole(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{value!r} is no whole number")
    return value


def scan_runs(runs_dir) -> tuple[list[RunSummary], list[str]]:
    """(every run under runs_dir, newest first; one sentence per folder refused and passed by).

    Refused: a symbolic link (never followed: it could bring a folder from anywhere into the listing, the
    Classify tab or a download), a run folder whose name is no run id, and one whose files are past their
    size caps or do not hold what gapdemo writes. Folders that hold no config.json (sweeps/, claims-<id>/)
    are no runs and pass silently.
    """
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return [], []
    summaries, refusals = [], []
    for path in sorted(runs_dir.iterdir()):
        if is_link(path):
            if path.is_dir():
                refusals.append(f"The runs folder holds a symbolic link {shown_name(path.name)}; it was not followed.")
            continue
        if not path.is_dir() or not is_run_folder(path):
            continue
        if not is_run_id(path.name):
            refusals.append(f"The run folder {shown_name(path.name)} is not named like a run (letters, digits, '.', "
                            "'_' and '-'); it was passed by.")
            continue
        try:
            summary = summarize_run(path)
        except RunFileError as error:
            refusals.append(str(error))
        except (ValueError, TypeError, AttributeError):
            refusals.append(f"Run {path.name}'s files do not hold what gapdemo writes; it was passed by.")
        else:
            summaries.append(summary)
    return sorted((s for s in summaries if s), key=lambda s: s.run_id, reverse=True), refusals


def list_runs(runs_dir) -> list[RunSummary]:
    """Every run under runs_dir, newest first (scan_runs' runs; refused folders are left out)."""
    return scan_runs(runs_dir)[0]


def resolve_run(run_id_or_dir: str | None, runs_dir="runs") -> Path:
    """A run id under runs_dir, or a path to a run directory; None -> the newest run with models."""
    if run_id_or_dir is None:
        for summary in list_runs(runs_dir):
            if has_models(summary.run_dir):
                return summary.run_dir
        raise FileNotFoundError(f"no run with saved models in {runs_dir}; train one first")
    for candidate in (Path(run_id_or_dir), Path(runs_dir) / str(run_id_or_dir)):
        if is_run_folder(candidate):
            return candidate
    raise FileNotFoundError(f"no run {run_id_or_dir!r} (looked in {runs_dir})")

REAL_PHOTO_DATASETS = ("folder", "cats_vs_dogs")  # sources of photographs; synthetic draws cartoons

def choose_classifier_run(runs_dir) -> tuple[RunSummary, str] | None:
    """The run a photo is classified with unless the user picks one, and one sentence saying which and why.

    The newest finished run trained on real photos (a folder or Cats vs Dogs) when there is one: models
    that only saw synthetic cartoons call a real cat "dog" as readily as "cat". Else the newest run with
    saved models. None when no run has models.
    """
    with_models = [summary for summary in list_runs(runs_dir)
                   if has_models(summary.run_dir)]
    if not with_models:
        return None
    real = [summary for summary in with_models
            if summary.state == "finished" and summary.dataset in REAL_PHOTO_DATASETS]
    chosen = (real or with_models)[0]
    trained_on = describe_training_data(read_config(chosen.run_dir))
    if real:
        return chosen, f"Using run {chosen.run_id}, the newest finished run trained on real photos ({trained_on})."
    return chosen, (f"Using run {chosen.run_id}, the newest run with models, trained on {trained_on}: no finished "
                    "run was trained on real photos (a folder or Cats vs Dogs).")

def describe_training_data(config: dict) -> str:
    """What a run's models learned from, from its config.json: 'the folder /x/PetImages, 18,610 training images'."""
    data, info = (config.get(name) if isinstance(config.get(name), dict) else {} for name in ("data", "dataset_info"))
    dataset = data.get("dataset", "?")
    splits = info.get("splits") if isinstance(info.get("splits"), dict) else {}
    train_count = splits.get("train")
    count = f", {train_count:,} training images" if isinstance(train_count, int) else ""
    if dataset == "folder":
        return f"the folder {data.get('data_dir')}{count}"
    if dataset == "cats_vs_dogs":
        return f"Cats vs Dogs{count}"
    if dataset == "synthetic":
        return f"synthetic cartoon pets{count}"
    return f"{dataset}{count}"
