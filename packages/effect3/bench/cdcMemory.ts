/**
 * CDC memory: one source transaction of N rows (default 1 000 000, one
 * `INSERT … SELECT generate_series` of 10 columns) applied by `sync` into
 * SQLite and into PostgreSQL, each in a child process that samples its own
 * RSS every 10 ms. Issue 24 asks for a peak of at most 256 MiB.
 *
 *   npx tsx bench/cdcMemory.ts [--rows N] [--batch-size B] [--atomicity transaction|batch] [--heap MiB]
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Sink from "effect/Sink"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import * as Host from "../../core/bench/host.js"
import * as Cdc from "#lib/Cdc.js"
import * as PgCluster from "#lib/testing/PgCluster.js"

const columns = `id int8 PRIMARY KEY, qty int4 NOT NULL, name text, price numeric(12,2), at timestamptz,
  active boolean, meta jsonb, ref uuid, score float8, day date`
const values = `g, g % 1000, md5(g::text), ((g % 100000) / 100.0)::numeric(12,2), timestamptz '2026-01-01' + g * interval '1 second',
  g % 2 = 0, jsonb_build_object('g', g, 'tags', jsonb_build_array('x', g)), md5(g::text)::uuid, g * 0.5, date '2026-01-01' + (g % 365)::int`

interface ChildResult {
  readonly target: string
  readonly changes: number
  readonly millis: number
  readonly baselineRssMiB: number
  readonly peakRssMiB: number
}

const arg = (flag: string, fallback: string) => {
  const at = process.argv.indexOf(flag)
  return at > 0 ? process.argv[at + 1]! : fallback
}

/** The child: one `sync` of the rule given in the environment, with its RSS sampled. */
const child = async () => {
  const rule = JSON.parse(process.env.CDC_RULE!) as Cdc.Rule
  const target = process.env.CDC_TARGET!
  let peak = process.memoryUsage().rss
  const baseline = peak
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss)
  }, 10)
  const started = performance.now()
  const result = await Effect.runPromise(Effect.gen(function*() {
    const client = target === "SQLite"
      ? yield* SqliteClient.make({ filename: process.env.CDC_SQLITE! })
      : yield* PgClient.make({ url: Redacted.make(process.env.CDC_PG!) })
    const cdc = yield* Cdc.make({ primary: Redacted.make(process.env.CDC_SOURCE!), targets: { [target]: Cdc.sqlTarget(client) }, rules: [rule] })
    return yield* cdc.sync(rule.name)
  }).pipe(Effect.provide(Reactivity.layer), Effect.scoped))
  clearInterval(timer)
  peak = Math.max(peak, process.memoryUsage().rss)
  const mib = (n: number) => Math.round(n / 1048576)
  const out: ChildResult = { target, changes: result.changes, millis: performance.now() - started, baselineRssMiB: mib(baseline), peakRssMiB: mib(peak) }
  console.log(JSON.stringify(out))
}

const parent = Effect.gen(function*() {
  const rows = Number(arg("--rows", "1000000"))
  const batchSize = Number(arg("--batch-size", "10000"))
  const atomicity = arg("--atomicity", "transaction") as "transaction" | "batch"
  // `--heap N`: the child's V8 old space capped at N MiB (`--max-old-space-size`).
  const heap = Number(arg("--heap", "0"))
  const heapFlags = heap > 0 ? [`--max-old-space-size=${heap}`] : []
  const source = yield* PgCluster.make({ replicas: 0, walLevel: "logical" })
  const target = yield* PgCluster.make({ replicas: 0 })
  const dir = yield* Effect.acquireRelease(
    Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "cdc-memory-"))),
    (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
  )
  yield* source.query(source.primary, `CREATE TABLE big (${columns})`)
  const rules: ReadonlyArray<readonly [string, Cdc.Rule]> = ["SQLite", "PostgreSQL"].map((t) => [t, {
    name: t === "SQLite" ? "big_lite" : "big_pg",
    tables: ["big"],
    target: t,
    snapshot: false,
    batchSize,
    atomicity
  }])
  // The slots exist before the transaction: it is all in the stream.
  const cdc = yield* Cdc.make({ primary: source.primary.url, targets: { SQLite: Cdc.sinkTarget(Sink.drain), PostgreSQL: Cdc.sinkTarget(Sink.drain) } })
  for (const [, rule] of rules) {
    yield* cdc.addRule(rule)
    yield* cdc.sync(rule.name)
    yield* cdc.removeRule(rule.name, { keepSlot: true })
  }
  yield* source.query(source.primary, `INSERT INTO big SELECT ${values} FROM generate_series(1, ${rows}) g`)
  const child = yield* Effect.acquireRelease(
    Effect.sync(() => Host.bundleWorker(fileURLToPath(import.meta.url))),
    (bundle) => Effect.sync(bundle.dispose)
  )
  const results: Array<ChildResult> = []
  for (const [name, rule] of rules) {
    // The child runs bundled on plain Node: its RSS is the library's, not tsx's (about 65 MiB more).
    const out = ChildProcess.spawnSync(process.execPath, [...heapFlags, "--conditions=effect-sql-router-dist", child.file, "--child"], {
      env: {
        ...process.env,
        CDC_RULE: JSON.stringify(rule),
        CDC_TARGET: name,
        CDC_SOURCE: Redacted.value(source.primary.url),
        CDC_PG: Redacted.value(target.primary.url),
        CDC_SQLITE: Path.join(dir, "big.db")
      },
      encoding: "utf8",
      maxBuffer: 1 << 20
    })
    if (out.status !== 0) return yield* Effect.die(new Error(`child for ${name} failed: ${out.stderr.slice(-2000)}`))
    results.push(JSON.parse(out.stdout.trim().split("\n").at(-1)!) as ChildResult)
  }
  return { rows, batchSize, atomicity, results }
})

if (process.argv.includes("--child")) {
  child().catch((error) => {
    console.error(String(error))
    process.exitCode = 1
  })
} else {
  Effect.runPromise(parent.pipe(Effect.provide(Reactivity.layer), Effect.scoped)).then(
    (r) => {
      console.log(`Source transaction of ${r.rows} rows, batchSize ${r.batchSize}, atomicity ${r.atomicity}${process.argv.includes("--heap") ? `, child heap capped at ${arg("--heap", "0")} MiB` : ""}:`)
      console.log("| target | changes | time (s) | RSS before (MiB) | peak RSS (MiB) | <= 256 MiB |")
      console.log("|---|---:|---:|---:|---:|---|")
      for (const x of r.results) {
        console.log(`| ${x.target} | ${x.changes} | ${(x.millis / 1000).toFixed(1)} | ${x.baselineRssMiB} | ${x.peakRssMiB} | ${x.peakRssMiB <= 256 ? "yes" : "no"} |`)
      }
    },
    (error) => {
      console.error(String(error))
      process.exitCode = 1
    }
  )
}
