"""The page's queue rules (gapdemo.jobs.scheduler) with runs trained in this process, so a test's data loader
can hold a run at a known point. The page itself never does this: its runs go to a worker process."""

from gapdemo.jobs.page import PageScheduler
from gapdemo.jobs.scheduler import Scheduler
from gapdemo.training.job import TrainingJob


class InThreadScheduler(Scheduler):
    """A Scheduler whose runs are TrainingJobs trained by its own threads."""

    def new_run_job(self, config, data_loader, owner, served):
        return TrainingJob(config, data_loader=data_loader, owner=owner, served=served)


class InThreadPageScheduler(PageScheduler):
    """The page's scheduler with its runs trained in this process (claims jobs and sweeps still in theirs):
    for tests of the page's queue, owners and captions that must hold a run in 'loading data' (a patched
    gapdemo.data.sources.load_data) while they look. Swap it in with use_in_thread_runs(monkeypatch)."""

    def new_run_job(self, config, data_loader, owner, served):
        return TrainingJob(config, data_loader=data_loader, owner=owner, served=served)


def use_in_thread_runs(monkeypatch) -> None:
    """The page's next scheduler (st.cache_resource cleared first) trains its runs in this process."""
    import dashboard.common

    monkeypatch.setattr(dashboard.common, "PageScheduler", InThreadPageScheduler)
