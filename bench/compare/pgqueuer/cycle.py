# The full cycle of `workq bench --stage cycle` on pgqueuer: WORKERS producers (in a process
# of their own, as workq's bench and graphile-worker's have their own threads or processes)
# add ITEMS jobs, BATCH per call; WORKERS queue managers, each on its own connection, take
# BATCH per dequeue and run a no-op; prints items/s from the first add until every job's
# completion is stored (pgqueuer deletes a finished job from its queue table).
# python cycle.py URL ITEMS WORKERS BATCH
import asyncio, json, multiprocessing, sys, time
import asyncpg
from datetime import timedelta
from pgqueuer.db import AsyncpgDriver
from pgqueuer.qm import QueueManager
from pgqueuer.queries import Queries


def producers(url, items, workers, batch, ready, go):
    async def produce(q, share):
        left = share
        while left > 0:
            n = min(left, batch)
            if n == 1:
                await q.enqueue("noop", b"{}")
            else:
                await q.enqueue(["noop"] * n, [b"{}"] * n, [0] * n)
            left -= n

    shares = [items // workers + (1 if p < items % workers else 0) for p in range(workers)]

    async def all_of_them():
        # Connected before the clock starts, as the queue managers are.
        qs = [Queries(AsyncpgDriver(await asyncpg.connect(url))) for _ in shares]
        ready.set()
        await asyncio.get_running_loop().run_in_executor(None, go.wait)
        await asyncio.gather(*(produce(q, s) for q, s in zip(qs, shares)))

    asyncio.run(all_of_them())


async def main():
    url, items, workers, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    check = await asyncpg.connect(url)
    # From empty tables, as workq's bench starts: jobs an earlier run left would end this
    # one early (TRUNCATE leaves no dead rows behind, for a server without autovacuum).
    await check.execute("TRUNCATE pgqueuer, pgqueuer_log, pgqueuer_statistics")
    qms = []
    for _ in range(workers):
        qm = QueueManager(Queries(AsyncpgDriver(await asyncpg.connect(url))))

        @qm.entrypoint("noop")
        async def noop(job):
            pass

        qms.append(qm)
    ready, go = multiprocessing.Event(), multiprocessing.Event()
    adding = multiprocessing.Process(target=producers, args=(url, items, workers, batch, ready, go))
    adding.start()
    ready.wait()
    started = time.perf_counter()
    go.set()
    runs = [
        asyncio.create_task(qm.run(batch_size=batch, dequeue_timeout=timedelta(seconds=1)))
        for qm in qms
    ]
    while True:
        # A queue manager or the producers failing would leave the run waiting for ever.
        failed = [r.exception() for r in runs if r.done() and r.exception()]
        if failed:
            sys.exit(f"a queue manager failed: {failed[0]!r}")
        if adding.exitcode not in (None, 0):
            sys.exit(f"the producers failed: exit {adding.exitcode}")
        if adding.exitcode == 0 and await check.fetchval("SELECT count(*) FROM pgqueuer") == 0:
            break
        await asyncio.sleep(0.05)
    secs = time.perf_counter() - started
    for qm in qms:
        qm.shutdown.set()
    await asyncio.wait(runs, timeout=10)
    what = f"pgqueuer cycle, {workers} workers, batch {batch}"
    print(json.dumps({"what": what, "items": items, "secs": secs, "rate": items / secs}))


asyncio.run(main())
