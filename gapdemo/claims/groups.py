"""Which finished runs of a runs folder pool into one claims table: grouped by the settings that must match.

Two runs are samples of the same experiment when everything that shapes their numbers is the same, and only
the seed (data draw, initial weights, batch order) differs. That is:
    data      the source; for a folder, the folder itself (TFDS's Cats vs Dogs is one published set wherever
              it is stored); for synthetic pets, how many the set draws; the image size; the training-set cap
    model     the back-ends (in order), batch norm's momentum, and the dropout rate when fc_dropout is trained
    training  epochs, batch size, learning rate, precision, and batch-norm recalibration (with its batches)
Left out, as they change no number: the runs folder, the image cache folder and the batches per call into
TensorFlow (steps_per_execution only sets how often progress is reported).

The runs folder is shared and untrusted: it is read through gapdemo.runs (scan_runs passes links and planted
folders by; stored_run_config checks each run's settings), and every run passed by gets one sentence. A
group's key and description name only the shared settings (a folder by its name, never a path), so a served
page may show them; run ids are kept apart (RunGroup.run_ids) for the operator and the exports.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from gapdemo import runs
from gapdemo.config import RunConfig
from gapdemo.model.backends import BACKENDS
from gapdemo.validation import stored_run_config

UNSEEN_POSITION_KIND = "unseen positions"  # a claims job's run whose data are not what its settings say
LEFT_OUT_ORDER = ("running", "queued", "stopping", "stopped", "interrupted", "failed")


def shared_settings(config: RunConfig) -> dict:
    """The settings every run of a group shares (see the module docstring), JSON-ready."""
    data, model, train = config.data, config.model, config.train
    settings = {"dataset": data.dataset, "image_size": data.image_size, "train_size": data.train_size}
    if data.dataset == "synthetic":
        settings["synthetic_size"] = data.synthetic_size
    elif data.dataset == "folder":
        settings["data_dir"] = str(Path(data.data_dir or ".").resolve())
    settings.update(backends=list(model.backends), bn_momentum=model.bn_momentum)
    if "fc_dropout" in model.backends:
        settings["dropout_rate"] = model.dropout_rate
    settings.update(epochs=train.epochs, batch_size=train.batch_size, learning_rate=train.learning_rate,
                    precision=train.precision, recalibrate_bn=train.recalibrate_bn)
    if train.recalibrate_bn:
        settings["recalibration_batches"] = train.recalibration_batches
    return settings


def settings_key(settings: dict) -> str:
    """A short key of shared settings ('s' + 10 hex digits): equal settings, equal keys."""
    return "s" + hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]


def config_signature(config: RunConfig) -> str:
    """The key of one run's own settings: the shared ones and its three seeds (a measures file names it)."""
    seeds = {"data_seed": config.data.seed, "model_seed": config.model.seed, "train_seed": config.train.seed}
    return settings_key({**shared_settings(config), **seeds})


def public_settings(settings: dict) -> dict:
    """settings as a served page may show them: a data folder by its last name only, never its path."""
    shown = dict(settings)
    if "data_dir" in shown:
        shown["data_dir"] = Path(shown["data_dir"]).name
    return shown


def describe_settings(settings: dict) -> str:
    """'synthetic pets (2,500 drawn), 100 px, 2,000 training images, fc + fc_dropout + gap, 10 epochs, ...'."""
    dataset = {"synthetic": f"synthetic pets ({settings.get('synthetic_size', 0):,} drawn)",
               "cats_vs_dogs": "Cats vs Dogs"}.get(settings["dataset"], f"the folder {settings.get('data_dir')}")
    train_size = settings["train_size"]
    parts = [dataset, f"{settings['image_size']} px",
             "all training images" if train_size is None else f"{train_size:,} training images",
             " + ".join(settings["backends"]), f"{settings['epochs']} epochs", f"batch {settings['batch_size']}",
             f"learning rate {settings['learning_rate']:g}", f"BN momentum {settings['bn_momentum']:g}"]
    if "dropout_rate" in settings:
        parts.append(f"dropout {settings['dropout_rate']:g}")
    parts.append(settings["precision"])
    if not settings["recalibrate_bn"]:
        parts.append("no BN recalibration")
    return ", ".join(parts)


@dataclass
class RunGroup:
    """Finished runs that share their settings: one pooled claims table."""

    key: str  # settings_key of the shared settings
    settings: dict  # shared_settings, with any data folder's full path (public_settings hides it)
    run_dirs: list[Path] = field(default_factory=list)  # newest first
    configs: list[RunConfig] = field(default_factory=list)  # each run's checked settings, in run_dirs' order

    @property
    def runs(self) -> int:
        return len(self.run_dirs)

    @property
    def run_ids(self) -> list[str]:
        """The pooled runs' ids: for the operator and the exports, never for a served visitor."""
        return [path.name for path in self.run_dirs]

    @property
    def backends(self) -> list[str]:
        return list(self.settings["backends"])

    def description(self) -> str:
        """The shared settings in words, as any visitor may read them."""
        return describe_settings(public_settings(self.settings))

    def public(self) -> dict:
        """{"key", "settings", "description", "runs"}: what a served page may show of the group."""
        return {"key": self.key, "settings": public_settings(self.settings), "description": self.description(),
                "runs": self.runs}


@dataclass
class PoolScan:
    """The runs folder sorted for pooling: groups to offer, and what was left out and why."""

    groups: list[RunGroup]  # settings with at least 2 finished runs, the largest first
    single_runs: int  # finished runs whose settings no other finished run shares
    left_out: dict[str, int]  # state -> runs not finished (stopped, interrupted, failed, running ...)
    skipped: list[str]  # one sentence per folder passed by (planted, malformed, settings refused)

    def left_out_line(self) -> str:
        """'Left out: 1 stopped, 2 still running.' ('' when every run finished)."""
        if not self.left_out:
            return ""
        ordered = sorted(self.left_out, key=lambda state: (LEFT_OUT_ORDER + (state,)).index(state))
        words = [f"{self.left_out[state]} {'still running' if state == 'running' else state}" for state in ordered]
        return "Left out: " + ", ".join(words) + " (only finished runs are pooled)."

    def find(self, key: str) -> RunGroup:
        """The group with this key; ValueError (one sentence) when there is none."""
        for group in self.groups:
            if group.key == key:
                return group
        raise ValueError(f"no group of at least 2 finished runs has the settings key {key!r}")


def scan_pool(runs_dir) -> PoolScan:
    """Group runs_dir's finished runs by their shared settings (links and planted folders passed by)."""
    summaries, skipped = runs.scan_runs(runs_dir)
    by_key: dict[str, RunGroup] = {}
    left_out: Counter = Counter()
    for summary in summaries:
        if summary.state != "finished":
            left_out[summary.state] += 1
            continue
        config, problem = _poolable_config(summary.run_dir)
        if problem:
            skipped.append(problem)
            continue
        settings = shared_settings(config)
        group = by_key.setdefault(settings_key(settings), RunGroup(settings_key(settings), settings))
        group.run_dirs.append(summary.run_dir)
        group.configs.append(config)
    # The largest group first; among equal sizes, the one with the newest run (ids start with the time).
    groups = sorted((group for group in by_key.values() if group.runs >= 2), key=lambda group: max(group.run_ids),
                    reverse=True)
    groups.sort(key=lambda group: group.runs, reverse=True)
    singles = sum(group.runs for group in by_key.values() if group.runs < 2)
    return PoolScan(groups, singles, dict(left_out), skipped)


def _poolable_config(run_dir: Path) -> tuple[RunConfig | None, str | None]:
    """(the run's checked settings, None), or (None, why it cannot be pooled in one sentence)."""
    try:
        config = stored_run_config(run_dir)
    except runs.RunFileError as error:
        return None, f"Run {run_dir.name} was passed by: {error}"
    tags = runs.read_config(run_dir).get("claims")
    if isinstance(tags, dict) and tags.get("kind") == UNSEEN_POSITION_KIND:
        return None, (f"Run {run_dir.name} trained a claims job's unseen-position test (objects in one half only), "
                      "so its data are not what its settings say; it was passed by.")
    if not all(backend in BACKENDS for backend in config.model.backends):
        return None, f"Run {run_dir.name} names a back-end this version of gapdemo does not know; it was passed by."
    return config, None

