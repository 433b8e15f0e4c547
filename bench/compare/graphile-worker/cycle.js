// The full cycle of `workq bench --stage cycle` on graphile-worker: WORKERS producers add
// ITEMS jobs (BATCH per call), one worker pool of concurrency WORKERS takes and completes
// them with a no-op task; prints items/s from the first add to the last completion stored.
// node cycle.js URL ITEMS WORKERS BATCH   (BATCH 1: one job per call, no local queue, no
// completion batching; BATCH > 1: addJobs of BATCH, localQueue of BATCH, batched completions)
// DRAIN=1: only the taking; the jobs are added before the pool starts (its perfTest).
const { fork } = require("node:child_process");
const { run, makeWorkerUtils, Logger } = require("graphile-worker");
const { Pool } = require("pg");
const [url, items, workers, batch] = [process.argv[2], +process.argv[3], +process.argv[4], +process.argv[5]];
const drain = !!process.env.DRAIN;

// A producer: its own process, ready once connected, adding its share when told to go.
async function produce(share) {
  const utils = await makeWorkerUtils({ connectionString: url, maxPoolSize: 2 });
  await utils.withPgClient((c) => c.query("SELECT 1"));
  process.send("ready");
  await new Promise((r) => process.once("message", r));
  for (let left = share; left > 0; ) {
    const n = Math.min(left, batch);
    if (n === 1) await utils.addJob("noop", { n: left });
    else await utils.addJobs(Array.from({ length: n }, (_, i) => ({ identifier: "noop", payload: { n: i } })));
    left -= n;
  }
  await utils.release();
}

const jobsLeft = async (pool) =>
  +(await pool.query("SELECT count(*) FROM graphile_worker._private_jobs")).rows[0].count;

async function main() {
  if (process.argv[6]) return produce(+process.argv[6]);
  const pool = new Pool({ connectionString: url, max: 1 });
  // A fresh schema, as workq's bench makes: jobs an earlier run left would end this one
  // early, and their dead rows would slow it (this server may run without autovacuum).
  await pool.query("DROP SCHEMA IF EXISTS graphile_worker CASCADE");
  const utils = await makeWorkerUtils({ connectionString: url });
  await utils.migrate();
  if (drain)
    for (let left = items; left > 0; left -= 1000)
      await utils.addJobs(Array.from({ length: Math.min(left, 1000) }, (_, i) => ({ identifier: "noop", payload: { n: i } })));
  await utils.release();
  // The producers are started and connected before the clock starts.
  const kids = [];
  for (let p = 0; p < workers && !drain; p++) {
    const share = Math.floor(items / workers) + (p < items % workers ? 1 : 0);
    const kid = fork(__filename, [url, items, workers, batch, share]);
    const ready = new Promise((r) => kid.once("message", r));
    const exited = new Promise((r, j) => kid.on("exit", (c, sig) => (c === 0 ? r() : j(new Error(`producer exited ${c ?? sig}`)))));
    kids.push({ kid, ready, exited });
  }
  await Promise.all(kids.map((k) => k.ready));
  const worker = batch > 1
    ? { localQueue: { size: batch }, completeJobBatchDelay: 0, failJobBatchDelay: 0 }
    : { completeJobBatchDelay: -1, failJobBatchDelay: -1 };
  let ran = 0;
  let allRan;
  const ranAll = new Promise((r) => (allRan = r));
  const started = process.hrtime.bigint();
  const runner = await run({
    connectionString: url,
    concurrency: workers,
    maxPoolSize: workers + 4,
    noHandleSignals: true,
    pollInterval: 1000,
    logger: new Logger(() => () => {}),
    preset: { worker },
    taskList: { noop: async () => { if (++ran === items) allRan(); } },
  });
  kids.forEach((k) => k.kid.send("go"));
  const failed = new Promise((_, j) => runner.promise.catch(j));
  await Promise.race([Promise.all([...kids.map((k) => k.exited), ranAll]), failed]);
  // Done when every job's completion is stored (graphile-worker deletes a completed job;
  // batched completions may still be on their way when the last task returns).
  while ((await jobsLeft(pool)) > 0) await Promise.race([new Promise((r) => setTimeout(r, 5)), failed]);
  const secs = Number(process.hrtime.bigint() - started) / 1e9;
  await runner.stop();
  await pool.end();
  const mode = drain ? ", taking only" : "";
  console.log(JSON.stringify({ what: `graphile-worker cycle, ${workers} workers, batch ${batch}${mode}`, items, secs, rate: items / secs }));
}
main().catch((e) => { console.error(e); process.exit(1); });
