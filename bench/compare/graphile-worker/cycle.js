// The full cycle of `workq bench --stage cycle` on graphile-worker: PRODUCERS add ITEMS jobs
// (BATCH per call), one worker pool of concurrency WORKERS takes and completes them with a
// no-op task; prints items/s from the first add to the last completion.
// node cycle.js URL ITEMS WORKERS BATCH   (BATCH 1: one job per call, no local queue, no
// completion batching; BATCH > 1: addJobs of BATCH, localQueue of BATCH, batched completions)
const { fork } = require("node:child_process");
const { run, makeWorkerUtils } = require("graphile-worker");
const [url, items, workers, batch] = [process.argv[2], +process.argv[3], +process.argv[4], +process.argv[5]];
const PRODUCERS = workers;

async function produce(share) {
  const utils = await makeWorkerUtils({ connectionString: url, maxPoolSize: 2 });
  for (let left = share; left > 0; ) {
    const n = Math.min(left, batch);
    if (n === 1) await utils.addJob("noop", { n: left });
    else await utils.addJobs(Array.from({ length: n }, (_, i) => ({ identifier: "noop", payload: { n: i } })));
    left -= n;
  }
  await utils.release();
}

async function main() {
  if (process.argv[6]) return produce(+process.argv[6]);
  const utils = await makeWorkerUtils({ connectionString: url });
  await utils.migrate();
  if (process.env.DRAIN)
    for (let left = items; left > 0; left -= 1000)
      await utils.addJobs(Array.from({ length: Math.min(left, 1000) }, (_, i) => ({ identifier: "noop", payload: { n: i } })));
  await utils.release();
  let done = 0;
  let finished;
  const all = new Promise((r) => (finished = r));
  const worker = batch > 1
    ? { localQueue: { size: batch }, completeJobBatchDelay: 0, failJobBatchDelay: 0 }
    : { completeJobBatchDelay: -1, failJobBatchDelay: -1 };
  const runner = await run({
    connectionString: url,
    concurrency: workers,
    maxPoolSize: workers + 4,
    noHandleSignals: true,
    pollInterval: 1000,
    logger: new (require("graphile-worker").Logger)(() => () => {}),
    preset: { worker },
    taskList: { noop: async () => { if (++done === items) finished(); } },
  });
  const started = process.hrtime.bigint();
  const kids = [];
  if (process.env.DRAIN) {
    // Only the taking: the jobs were added before the pool started (graphile-worker's perfTest).
    for (let p = 0; p < PRODUCERS; p++) kids.push(Promise.resolve());
  } else
  for (let p = 0; p < PRODUCERS && !process.env.DRAIN; p++) {
    const share = Math.floor(items / PRODUCERS) + (p < items % PRODUCERS ? 1 : 0);
    kids.push(new Promise((r, j) => fork(__filename, [url, items, workers, batch, share]).on("exit", (c) => (c ? j(c) : r()))));
  }
  await Promise.all(kids);
  await all;
  const secs = Number(process.hrtime.bigint() - started) / 1e9;
  await runner.stop();
  console.log(JSON.stringify({ what: `graphile-worker cycle, ${workers} workers, batch ${batch}`, items, secs, rate: items / secs }));
}
main().catch((e) => { console.error(e); process.exit(1); });
