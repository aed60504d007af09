"""The page's scheduler: runs go to training workers, claims jobs and sweeps to child processes, all
through one queue on this machine (gapdemo.jobs.scheduler), never into the web server's process.

The page keeps one per server process (st.cache_resource), so every tab and every reload sees the same
jobs. Each job's processes are told the page's memory budget for a run (GAPDEMO_MAX_RUN_MEMORY, fixed
here once: half the machine's memory less what the server holds), so the gate asks the same question
in every process, and the watchdog stops a process that grows past it.
"""

from __future__ import annotations

from gapdemo.budget.duration import RATE_VARIABLE, TRAINING_RATE
from gapdemo.budget.limits import max_training
from gapdemo.budget.memory import BUDGET_VARIABLE, memory_budget_bytes
from gapdemo.claims.over_seeds import check_arguments
from gapdemo.config import RunConfig
from gapdemo.jobs.child_job import ClaimsJob, PoolMeasureJob, SweepJob
from gapdemo.jobs.run_job import WorkerRunJob
from gapdemo.jobs.scheduler import Scheduler
from gapdemo.jobs.worker_process import WorkerPool
from gapdemo.serving import child_environment
from gapdemo.sweep.execution import plan_sweep


class PageScheduler(Scheduler):
    """Runs, claims jobs and sweeps of one page, at most max_training training at once on this machine."""

    def __init__(self, max_runs: int | None = None, budget_bytes: int | None = None):
        super().__init__(max_training() if max_runs is None else max_runs)
        self.budget_bytes = memory_budget_bytes() if budget_bytes is None else budget_bytes
        self.pool = WorkerPool(self.child_environment(False))

    def warm(self) -> None:
        """Start a training worker now, so the first Start finds TensorFlow imported."""
        self.pool.warm()

    def close(self) -> None:
        """Stop every job and end the workers (the server is going)."""
        for job in self.jobs():
            job.stop()
        self.pool.close()

    def child_environment(self, served: bool) -> dict:
        """The environment of a job's process: served passed on, the budget of a run fixed, and the page's
        training rate, so the job's own gate estimates a run's time as the page did."""
        return {**child_environment(served), BUDGET_VARIABLE: str(self.budget_bytes),
                RATE_VARIABLE: f"{TRAINING_RATE.units_per_second():.6g}"}

    def local_slots(self, wanted: int) -> int:
        """Training slots a job that wants to train `wanted` runs at once takes here (0: none, on a cluster)."""
        return max(1, min(int(wanted), self.max_training))

    def new_run_job(self, config: RunConfig, data_loader, owner: str | None, served: bool):
        if data_loader is not None:
            raise ValueError("A run from the page loads its data in the training worker; no loader can be handed over.")
        return WorkerRunJob(config, self.pool, owner=owner, served=served, budget_bytes=self.budget_bytes)

    def submit_claims(self, config: RunConfig, seeds: int, *, owner: str | None, served: bool) -> ClaimsJob:
        """Queue a claims job; ValueError (one sentence) when it may not run here or one is already queued."""
        check_arguments(config, seeds, served=served)
        job = ClaimsJob(config, seeds, owner=owner, slots=self.local_slots(1),
                        environment=self.child_environment(served), budget_bytes=self.budget_bytes)
        return self.submit_job(job, served=served)

    def submit_pool_measuring(self, runs_dir, group_key: str, *, served: bool) -> PoolMeasureJob:
        """Queue the measuring of a pooled group's new runs (the Claims tab asks when it sees some)."""
        job = PoolMeasureJob(runs_dir, group_key, environment=self.child_environment(served),
                             budget_bytes=self.budget_bytes)
        return self.submit_job(job, served=served)

    def submit_sweep(self, base: RunConfig, grid: dict, seeds: int, max_concurrent: int | None = None, *,
                     owner: str | None, served: bool) -> SweepJob:
        """Queue a sweep of grid x seeds on base; ValueError when a grid point may not run here (the gate,
        and the trial cap when served) or a sweep is already queued. max_concurrent: trials at once,
        at most max_training here (None: that many)."""
        plan = plan_sweep(base, grid, seeds, served=served)
        job = SweepJob(plan, owner=owner, slots=self.local_slots(max_concurrent or self.max_training),
                       environment=self.child_environment(served), budget_bytes=self.budget_bytes)
        return self.submit_job(job, served=served)
