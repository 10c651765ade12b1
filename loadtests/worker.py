"""The entry point of one generator process (multiprocessing, spawn): sets the process up
and runs its job with the generator the job names (`loadtests.gen`, `gen_poisson`,
`gen_idle`). Apart from them so that none of them imports another's user."""

from __future__ import annotations

import asyncio
import gc
import traceback

from loadtests.gen import Run, pin, raise_nofile, uvloop_run
from loadtests.gen_idle import hold_idle
from loadtests.gen_poisson import PoissonRun


def worker_main(job: dict, index: int, start, results) -> None:
    """Entry point of one generator process (multiprocessing, spawn)."""
    raise_nofile()
    # The generator's own collection pauses would be counted as server latency: keep them
    # rare (the same setting the gateway and hosts use).
    gc.freeze()
    gc.set_threshold(50_000, 20, 50)
    try:
        pin(job.get("cpus"))
        run = asyncio.run if job.get("loop") == "asyncio" else uvloop_run()
        if job.get("kind") == "idle":
            run(hold_idle(job, index, start, results))
        elif job.get("mode") == "poisson":
            run(PoissonRun(job).run(index, start, results))
        else:
            run(Run(job).run(index, start, results))
    except BaseException:
        results.put(("error", index, traceback.format_exc()))
        raise
