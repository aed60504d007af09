"""What a run asks of a cluster: the CPUs and GPUs per page run, reserved for it alone in a placement group."""

from __future__ import annotations

from gapdemo import settings

CPUS_VARIABLE, GPUS_VARIABLE = settings.CPUS_PER_RUN.name, settings.GPUS_PER_RUN.name  # what each page run asks Ray for


def resources_per_run(environ=None) -> tuple[float, float]:
    """(CPUs, GPUs) each run started from the page asks the cluster for: GAPDEMO_CPUS_PER_RUN (default
    1) and GAPDEMO_GPUS_PER_RUN (default 0, fractions allowed); ValueError in one sentence when unreadable."""
    return settings.cpus_per_run(environ), settings.gpus_per_run(environ)


def reserved_task(function, cpus: float, gpus: float, max_retries: int):
    """(placement group, remote function) for one run of function: the run's CPUs (and GPUs) are reserved for it alone.

    A plain task gives its CPU back to the node while it waits in ray.get (and the worker does, to send
    its epochs home), so Ray would start the next run's task there: four runs on two one-CPU nodes all
    trained at once. Inside its own placement group a released CPU can only go back to the same run.
    A lost node's group is placed again on another node, and the retried task with it.
    """
    import ray  # deferred: Ray fixes its single-machine mode on first import (gapdemo.cluster.connection)
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy  # with ray, above

    group = ray.util.placement_group([{"CPU": cpus, **({"GPU": gpus} if gpus else {})}])
    task = ray.remote(function).options(
        num_cpus=cpus, num_gpus=gpus, max_retries=max_retries, retry_exceptions=False,
        scheduling_strategy=PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=0))
    return group, task
