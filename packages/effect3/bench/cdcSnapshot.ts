/**
 * CDC snapshot benchmark (issue 24): a table of `--rows` rows (default 1M,
 * 5 narrow columns) copied by a rule's incremental snapshot into SQLite and
 * into PostgreSQL while writes flow on the source. The rule runs in a child
 * process that samples its RSS; the parent seeds and writes. (That the
 * target then equals the source is what test/CdcSnapshot.test.ts checks.)
 *
 *   npx tsx bench/cdcSnapshot.ts [--rows N] [--rounds R] [--chunk C] [--rate TX_PER_S] [--target sqlite|pg] [--heap MiB]
 *
 * `--heap` runs the child with `--max-old-space-size` (V8 otherwise lets
 * garbage pile up well past what is live before a full collection).
 *
 * Prints a Markdown table: per target and round, rows/s and peak RSS (and
 * the child's RSS before the snapshot).
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import Pg from "pg"
import * as Host from "../../core/bench/host.js"
import * as Cdc from "#lib/Cdc.js"
import * as PgCluster from "#lib/testing/PgCluster.js"

const arg = (flag: string, fallback: number) => {
  const at = process.argv.indexOf(flag)
  return at > 0 ? Number(process.argv[at + 1]) : fallback
}

interface ChildResult {
  readonly rssBeforeMiB: number
  readonly rssPeakMiB: number
  /** The JS heap in use at the RSS peak's sample. */
  readonly heapAtPeakMiB: number
  readonly millis: number
  readonly rowsCopied: number
}

/** The child: one rule, one `sync` (the whole snapshot, then the stream up to now), RSS sampled every 20 ms. */
const child = async () => {
  const [source, kind, target, chunk] = process.argv.slice(3)
  let peak = process.memoryUsage().rss
  let heapAtPeak = 0
  const sampler = setInterval(() => {
    const usage = process.memoryUsage()
    if (usage.rss > peak) {
      peak = usage.rss
      heapAtPeak = usage.heapUsed
    }
  }, 20)
  const targetClient: Effect.Effect<SqlClient.SqlClient, unknown, any> = kind === "sqlite"
    ? SqliteClient.make({ filename: target! })
    : PgClient.make({ url: Redacted.make(target!) })
  const program = Effect.gen(function*() {
    const sql = yield* targetClient
    const cdc = yield* Cdc.make({ primary: Redacted.make(source!), targets: { t: Cdc.sqlTarget(sql) } })
    yield* cdc.addRule({ name: "bench", tables: ["snap"], target: "t", snapshotChunkSize: Number(chunk) })
    const before = process.memoryUsage().rss
    peak = before
    const started = performance.now()
    yield* cdc.sync("bench")
    const millis = performance.now() - started
    const stats = yield* cdc.stats("bench")
    return { rssBeforeMiB: before / 2 ** 20, rssPeakMiB: peak / 2 ** 20, heapAtPeakMiB: heapAtPeak / 2 ** 20, millis, rowsCopied: stats.snapshot?.rowsCopied ?? 0 }
  }).pipe(Effect.provide(Reactivity.layer), Effect.scoped)
  const result = await Effect.runPromise(program as Effect.Effect<ChildResult, unknown>)
  clearInterval(sampler)
  process.stdout.write(`${JSON.stringify(result)}\n`)
}

let bundle: { readonly file: string; readonly dispose: () => void } | undefined
const bundled = () => {
  if (bundle === undefined) {
    const made = Host.bundleWorker(fileURLToPath(import.meta.url))
    bundle = made
    process.once("exit", made.dispose)
  }
  return bundle
}

const runChild = (args: ReadonlyArray<string>) =>
  Effect.async<ChildResult, Error>((resume) => {
    const heap = arg("--heap", 0)
    const flags = heap > 0 ? [`--max-old-space-size=${heap}`] : []
    // Bundled, on plain Node: the child's RSS is the library's, not tsx's (about 65 MiB more).
    const proc = spawn(process.execPath, [...flags, "--conditions=effect-sql-router-dist", bundled().file, "--child", ...args], {
      stdio: ["ignore", "pipe", "inherit"]
    })
    let out = ""
    proc.stdout.on("data", (d) => out += d)
    proc.on("exit", (code) =>
      code === 0
        ? resume(Effect.succeed(JSON.parse(out.trim().split("\n").pop()!) as ChildResult))
        : resume(Effect.fail(new Error(`child exited with ${code}`))))
    return Effect.sync(() => proc.kill("SIGKILL"))
  })

const parent = Effect.gen(function*() {
  const rows = arg("--rows", 1_000_000)
  const rounds = arg("--rounds", 1)
  const chunk = arg("--chunk", 5_000)
  const rate = arg("--rate", 300)
  const only = process.argv.indexOf("--target")
  const targets = only > 0 ? [process.argv[only + 1] as "sqlite" | "pg"] : (["sqlite", "pg"] as const)
  const source = yield* PgCluster.make({ replicas: 0, walLevel: "logical" })
  const dir = yield* Effect.acquireRelease(
    Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "cdc-snap-bench-"))),
    (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
  )
  const writer = yield* Effect.acquireRelease(
    Effect.promise(async () => {
      const client = new Pg.Client({ connectionString: Redacted.value(source.primary.url) })
      await client.connect()
      return client
    }),
    (client) => Effect.promise(() => client.end())
  )
  const q = (sql: string) => Effect.promise(() => writer.query(sql))
  yield* q("CREATE TABLE snap (id int8 PRIMARY KEY, a int4 NOT NULL, b int8 NOT NULL, c text NOT NULL, d float8 NOT NULL)")
  yield* q(`INSERT INTO snap SELECT g, g % 1000, g * 7, md5(g::text), g / 3.0 FROM generate_series(1, ${rows}) g`)
  yield* q("ANALYZE snap")
  const base = Redacted.value(source.primary.url)
  const results: Array<{ target: string; round: number; seconds: number; rowsPerSecond: number; writes: number } & ChildResult> = []
  for (let round = 1; round <= rounds; round++) {
    for (const kind of targets) {
      const database = `target_${kind}_${round}`
      let target = Path.join(dir, `${database}.db`)
      if (kind === "pg") {
        yield* q(`CREATE DATABASE ${database}`)
        target = base.replace(/\/[^/?]*(\?|$)/, `/${database}$1`)
      }
      // Writes flow on the source the whole time, `--rate` transactions per second: updates,
      // inserts past the end and deletes, spread over the keys.
      let writes = 0
      let stop = false
      const load = (async () => {
        const started = performance.now()
        while (!stop) {
          const due = started + (writes / 3) * (3000 / rate)
          if (performance.now() < due) await new Promise((r) => setTimeout(r, due - performance.now()))
          const id = 1 + Math.floor(Math.random() * rows)
          await writer.query("UPDATE snap SET a = a + 1 WHERE id = $1", [id])
          await writer.query("INSERT INTO snap VALUES ($1, 0, 0, 'new', 0) ON CONFLICT (id) DO UPDATE SET a = 0", [rows + id])
          await writer.query("DELETE FROM snap WHERE id = $1", [1 + Math.floor(Math.random() * rows)])
          writes += 3
        }
      })()
      const result = yield* runChild([base, kind, target, String(chunk)])
      stop = true
      yield* Effect.promise(() => load)
      results.push({
        target: kind === "pg" ? "PostgreSQL" : "SQLite",
        round,
        seconds: result.millis / 1000,
        rowsPerSecond: result.rowsCopied / (result.millis / 1000),
        writes,
        ...result
      })
      // The slot goes with the rule's child; drop it so the next round starts over.
      yield* q("SELECT pg_drop_replication_slot('cdc_bench')")
      yield* q("DROP PUBLICATION IF EXISTS cdc_bench")
    }
  }
  return { rows, chunk, rate, results }
})

if (process.argv[2] === "--child") {
  child().catch((error) => {
    console.error(String(error))
    process.exit(1)
  })
} else {
  Effect.runPromise(Effect.scoped(parent)).then(
    ({ chunk, rate, results, rows }) => {
      const fmt = (n: number) => n.toLocaleString("en-US", { maximumFractionDigits: 0 })
      console.log([
        `## CDC snapshot (${fmt(rows)} rows of 5 columns, chunks of ${fmt(chunk)}, ${fmt(rate)} source transactions/s meanwhile)`,
        "",
        "| target | round | rows copied | seconds | rows/s | source writes meanwhile | RSS before (MiB) | peak RSS (MiB) | JS heap at peak (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ...results.map((r) =>
          `| ${r.target} | ${r.round} | ${fmt(r.rowsCopied)} | ${r.seconds.toFixed(1)} | ${fmt(r.rowsPerSecond)} | ${fmt(r.writes)} | ${fmt(r.rssBeforeMiB)} | ${fmt(r.rssPeakMiB)} | ${fmt(r.heapAtPeakMiB)} |`
        ),
        ""
      ].join("\n"))
    },
    (error) => {
      console.error(String(error))
      process.exitCode = 1
    }
  )
}
