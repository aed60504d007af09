"""Four runs started from the page: on a two-node Ray cluster side by side vs the page's queue here.

  queue here   gapdemo.jobs.page.PageScheduler: one run at a time in its training worker, TensorFlow's default
               threads (the worker started and TensorFlow imported before the clock starts)
  cluster      gapdemo.jobs.cluster_job.ClusterJobManager against a local ray.cluster_utils cluster of two
               nodes, one CPU each: each run a child `gapdemo train --address` process, one Ray task

Both submit the same 4 default-size runs (seeds 0-3) as four Starts would, and time the wall clock
to the last run's end and, per run, Start to the first curve point the page could draw (a batch row in
the job's snapshot). On 2 cores the cluster can only win by the one-thread-per-run effect (two
one-thread processes beat one two-thread process, RESULTS §8); on a real cluster each node brings its
own cores. Usage: python -m benchmarks.cluster_runs [--quick] [--results PATH]
"""

from __future__ import annotations

import tempfile
import time

from benchmarks import common

KEY, TITLE = "cluster_runs", "9. Four runs from the page: a two-node Ray cluster vs the queue here"
RUNS = 4


def sizes(args) -> dict:
    if args.quick:
        return {"image_size": 32, "train_size": 48, "batch_size": 16, "epochs": 1, "backends": ("gap",)}
    return {"image_size": 100, "train_size": 2000, "batch_size": 64, "epochs": 10,
            "backends": ("fc", "fc_dropout", "gap")}


def configs(size: dict, runs_dir: str) -> list:
    from gapdemo.config import DataConfig, ModelConfig, RunConfig, TrainConfig

    return [RunConfig(data=DataConfig(image_size=size["image_size"], train_size=size["train_size"], seed=seed),
                      model=ModelConfig(backends=size["backends"], seed=seed),
                      train=TrainConfig(epochs=size["epochs"], batch_size=size["batch_size"], runs_dir=runs_dir,
                                        seed=seed))
            for seed in range(RUNS)]


def submit_and_watch(manager, run_configs: list) -> dict:
    """Submit every config at once; {"wall", "first_points": [s per run], "states"} once all ended."""
    start, first_points, jobs = time.perf_counter(), {}, []
    for index, config in enumerate(run_configs):  # four visitors, one Start each
        jobs.append(manager.submit(config, owner=f"visitor-{index}", served=False))
    while not all(job.is_done() for job in jobs):
        for index, job in enumerate(jobs):
            if index not in first_points and job.snapshot().batch_metrics:
                first_points[index] = time.perf_counter() - start
        time.sleep(0.25)
    wall = time.perf_counter() - start
    return {"wall": wall, "first_points": [first_points.get(i, float("nan")) for i in range(len(jobs))],
            "states": [job.state for job in jobs]}


def queue_here(size: dict) -> dict:
    """The in-process queue, in a fresh process (nothing compiled or drawn carries over)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as process:
        return process.submit(_queue_here, size).result()


def _queue_here(size: dict) -> dict:
    from gapdemo.jobs.page import PageScheduler

    scheduler = PageScheduler()
    scheduler.warm()  # outside the clock, as a page server has its worker ready
    scheduler.pool.wait_ready(120)
    try:
        with tempfile.TemporaryDirectory() as runs_dir:
            return submit_and_watch(scheduler, configs(size, runs_dir))
    finally:
        scheduler.close()


def on_cluster(size: dict) -> dict:
    from ray.cluster_utils import Cluster

    from gapdemo.jobs.cluster_job import ClusterJobManager

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        with tempfile.TemporaryDirectory() as runs_dir:
            result = submit_and_watch(ClusterJobManager(cluster.address), configs(size, runs_dir))
    finally:
        cluster.shutdown()
    return result


def main(argv=None) -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    size = sizes(args)
    load_before = common.load_average()
    measured = {}
    for name, measure in (("queue", queue_here), ("cluster", on_cluster)):
        measured[name] = measure(size)
        print(f"  {name}: {measured[name]['wall']:.1f} s, states {measured[name]['states']} "
              f"(load {common.load_average()})", flush=True)
    _report(args, size, measured, load_before)


def _report(args, size: dict, measured: dict, load_before: str) -> None:
    queue, cluster = measured["queue"], measured["cluster"]
    ratio = cluster["wall"] / queue["wall"]

    def points(result):
        return " / ".join(f"{seconds:.1f}" for seconds in result["first_points"])

    rows = [
        [f"{RUNS} runs, the page's queue here (one at a time)", f"{queue['wall']:.1f}", "1.00", points(queue)],
        [f"{RUNS} runs on a two-node Ray cluster (1 CPU each)", f"{cluster['wall']:.1f}", f"{ratio:.2f}",
         points(cluster)],
    ]
    table = common.format_table(["candidate", "wall s", "ratio", "Start -> first curve point, s (run 1 / 2 / 3 / 4)"],
                                rows)
    notes = [f"Runs: {size['image_size']} px, {size['train_size']} training images, {size['epochs']} epochs, "
             f"back-ends {', '.join(size['backends'])}, seeds 0-{RUNS - 1}, all submitted at once. End states: "
             f"queue {', '.join(queue['states'])}; cluster {', '.join(cluster['states'])}.",
             "Both clusters' nodes share this machine's cores: the cluster's gain here is only two one-thread "
             "runs beating one two-thread run; its first points include each run's driver joining Ray and its "
             "worker importing TensorFlow, and two of the four wait for a free CPU (whichever Ray places second), as the queue's runs 2-4 wait "
             "for the run before them. One measurement each, queue first."]
    common.report(args, KEY, TITLE, table, notes, load_before)


if __name__ == "__main__":
    main()
