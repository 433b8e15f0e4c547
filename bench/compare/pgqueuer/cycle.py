# The full cycle of `workq bench --stage cycle` on pgqueuer: PRODUCERS (= WORKERS) tasks add
# ITEMS jobs, BATCH per call; WORKERS queue managers, each on its own connection, take BATCH
# per dequeue and run a no-op; prints items/s from the first add to the last completion.
# python cycle.py URL ITEMS WORKERS BATCH
import asyncio, json, sys, time
import asyncpg
from datetime import timedelta
from pgqueuer.qm import QueueManager
from pgqueuer.db import AsyncpgDriver
from pgqueuer.queries import Queries

async def main():
    url, items, workers, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    done = 0
    all_done = asyncio.Event()
    qms = []
    for _ in range(workers):
        qm = QueueManager(Queries(AsyncpgDriver(await asyncpg.connect(url))))
        @qm.entrypoint("noop")
        async def noop(job):
            nonlocal done
            done += 1
            if done >= items:
                all_done.set()
        qms.append(qm)
    async def produce(share):
        q = Queries(AsyncpgDriver(await asyncpg.connect(url)))
        left = share
        while left > 0:
            n = min(left, batch)
            if n == 1:
                await q.enqueue("noop", b"{}")
            else:
                await q.enqueue(["noop"] * n, [b"{}"] * n, [0] * n)
            left -= n
    started = time.perf_counter()
    runs = [asyncio.create_task(qm.run(batch_size=batch, dequeue_timeout=timedelta(seconds=1))) for qm in qms]
    shares = [items // workers + (1 if p < items % workers else 0) for p in range(workers)]
    await asyncio.gather(*(produce(s) for s in shares))
    while not all_done.is_set():
        # A queue manager that failed would leave the run waiting for ever: say why.
        failed = [r.exception() for r in runs if r.done() and r.exception()]
        if failed:
            sys.exit(f"a queue manager failed: {failed[0]!r}")
        try:
            await asyncio.wait_for(all_done.wait(), 5)
        except asyncio.TimeoutError:
            print("done", done, file=sys.stderr)
    secs = time.perf_counter() - started
    for qm in qms:
        qm.shutdown.set()
    await asyncio.wait(runs, timeout=10)
    print(json.dumps({"what": f"pgqueuer cycle, {workers} workers, batch {batch}", "items": items, "secs": secs, "rate": items / secs}))

asyncio.run(main())
