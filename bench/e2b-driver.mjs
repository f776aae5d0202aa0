// The `e2b` npm SDK (debug mode) as a benchmark client, driven by envd-bench.
//
//   E2B_DEBUG=true E2B_SANDBOX_URL=http://127.0.0.1:PORT \
//   node bench/e2b-driver.mjs --module .../node_modules/e2b/dist/index.mjs \
//        --op stat|list --path P --concurrency C --warmup S --duration S
//
// Keeps C calls in flight (C async loops) for warm-up + duration. Prints
// "measure-start" and "measure-end" lines at the edges of the measured window
// (envd-bench reads this process's CPU from /proc at those moments), then one
// JSON line: {calls, errors, seconds, p50_us, p90_us, p99_us, mean_us,
// max_us, self_cpu_us, first_error}.
import { pathToFileURL } from "node:url";

function parseArgs(argv) {
  const o = { module: null, op: "stat", path: "/", concurrency: 1, warmup: 1, duration: 3 };
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, "");
    if (!(k in o)) throw new Error(`unknown argument ${argv[i]}`);
    o[k] = argv[i + 1];
  }
  o.concurrency = Number(o.concurrency);
  o.warmup = Number(o.warmup);
  o.duration = Number(o.duration);
  if (!o.module) throw new Error("--module is required");
  return o;
}

const opts = parseArgs(process.argv.slice(2));
const { Sandbox } = await import(pathToFileURL(opts.module).href);
const sbx = await Sandbox.create(); // debug mode: no control-plane call

const call =
  opts.op === "stat"
    ? () => sbx.files.getInfo(opts.path)
    : opts.op === "list"
      ? () => sbx.commands.list()
      : null;
if (!call) throw new Error(`unknown op ${opts.op}`);

// 0 warm-up, 1 measuring, 2 stopping
let phase = 0;
let calls = 0;
let errors = 0;
let firstError = null;
const lat = [];

async function worker() {
  while (phase !== 2) {
    const t0 = process.hrtime.bigint();
    let ok = true;
    try {
      await call();
    } catch (err) {
      ok = false;
      if (firstError === null) firstError = String(err?.message ?? err);
    }
    const us = Number(process.hrtime.bigint() - t0) / 1000;
    if (phase === 1) {
      if (ok) {
        calls++;
        lat.push(us);
      } else {
        errors++;
      }
    }
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const workers = Array.from({ length: opts.concurrency }, () => worker());
await sleep(opts.warmup * 1000);
process.stdout.write("measure-start\n");
const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
phase = 1;
await sleep(opts.duration * 1000);
phase = 2;
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
const cpu = process.cpuUsage(cpu0);
process.stdout.write("measure-end\n");
await Promise.all(workers);

lat.sort((a, b) => a - b);
const q = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.ceil(p * lat.length) - 1)] : 0);
const sum = lat.reduce((a, b) => a + b, 0);
process.stdout.write(
  JSON.stringify({
    calls,
    errors,
    seconds,
    p50_us: q(0.5),
    p90_us: q(0.9),
    p99_us: q(0.99),
    mean_us: lat.length ? sum / lat.length : 0,
    max_us: lat.length ? lat[lat.length - 1] : 0,
    self_cpu_us: cpu.user + cpu.system,
    first_error: firstError,
  }) + "\n",
);
process.exit(0);
