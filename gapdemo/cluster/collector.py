"""The collector: a Ray actor on the driver's node that writes the trials' run folders there.

Workers send each finished epoch's run folder (gapdemo.runs.pack_run_folder) and their progress;
the collector writes the files into <runs_dir>/<run_id>/ on its own node, so nothing depends on a
shared file system, and stands in as the writer of a running trial's status (a worker's pid means
nothing on this node). Its stop flag is how a sweep stops: workers poll it.
"""

from __future__ import annotations

from pathlib import Path

from gapdemo import runs

TERMINAL_STATES = ("finished", "stopped", "failed")


class TrialCollector:
    """Receives trial folders and progress; its process stands in as the writer of running runs."""

    def __init__(self, runs_dir: str):
        self.runs_dir = Path(runs_dir)
        self.stop = False
        # run_id -> {"state", "message", "node", "progress", "attempts", "epoch_ends"}
        self.trials = {}

    def begin(self, run_id: str, node_id: str) -> bool:
        """A worker starts run_id; False when the sweep was stopped (the worker should not train)."""
        run_dir = self.run_folder(run_id)  # checked before anything is recorded of it
        entry = self.trials.setdefault(run_id, {"attempts": 0})
        entry.update(state="running", message="", node=node_id, progress={}, epoch_ends={})
        entry["attempts"] += 1
        if not self.stop:
            runs.clear_run_folder(run_dir)  # a retried trial starts clean
        return not self.stop

    def run_folder(self, run_id: str) -> Path:
        """runs_dir/run_id, or RunFileError for an id that is no run id or a folder that is a link: the
        collector clears and writes it, so it must lie inside the runs folder (gapdemo.runs.trust)."""
        return runs.run_folder(self.runs_dir, run_id, "A trial sent to the collector")

    def receive(self, run_id: str, files: dict, tags: dict) -> None:
        def stored(config: dict) -> dict:  # this node's runs folder, not the worker's, and the sweep's tags
            return {**config, "train": {**config.get("train", {}), "runs_dir": str(self.runs_dir)}, **tags}

        run_dir = self.run_folder(run_id)
        runs.unpack_run_folder(run_dir, files, stored)
        runs.adopt_status(run_dir)  # the worker's pid means nothing on this node

    def report(self, run_id: str, progress: dict) -> None:
        self.trials.setdefault(run_id, {"attempts": 0})["progress"] = progress

    def end_epoch(self, run_id: str, progress: dict) -> None:
        """An epoch's last training progress (its final rate), kept per epoch: a view polled once a second
        would otherwise miss it when the epoch is shorter than that."""
        entry = self.trials.setdefault(run_id, {"attempts": 0})
        entry.setdefault("epoch_ends", {})[int(progress["epoch"])] = progress

    def finish(self, run_id: str, state: str, message: str) -> None:
        self.trials.setdefault(run_id, {"attempts": 0}).update(state=state, message=message)

    def request_stop(self) -> None:
        self.stop = True

    def stop_requested(self) -> bool:
        return self.stop

    def snapshot(self) -> dict:
        return {run_id: {**entry, "epoch_ends": dict(entry.get("epoch_ends", {}))} for run_id, entry in self.trials.items()}
