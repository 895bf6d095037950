/**
 * The CDC acceptance scenario both lines share (`bench/cdcScenario.ts` in each
 * line; `npm run scenario:cdc` and `npm run scenario:cdc:effect4` at the
 * repository root): issue 24's "done when", end to end, on one machine.
 *
 * 1. The source gets a 1M-row table (`big`, five narrow columns) and three
 *    tables of ten columns of varied types (enum, domain, interval, arrays,
 *    jsonb, bytea, a composite key, and a `time` column carried as text).
 * 2. Two CDC worker processes start, one rule each: into a PostgreSQL
 *    database and into a SQLite file, both with `schemaChanges: "apply"`.
 *    A random workload writes while they snapshot.
 * 3. The fault: when the PostgreSQL rule has copied 40% of `big`, both
 *    workers are SIGKILLed and started again; the snapshot resumes.
 * 4. Halfway through the workload's 10 000 row changes, a column is added
 *    to two source tables (one with a constant default), and the workload
 *    goes on writing it.
 * 5. When the workload is done and both slots have confirmed the source's
 *    position, the targets are compared with the source row by row.
 *
 * Peak RSS of each worker (VmHWM, read from /proc before every kill and at
 * the end) is reported against the 256 MiB bound. Plain Node, `pg` and
 * `better-sqlite3`, no Effect: the line starts the servers and provides the
 * worker.
 */
import Sqlite from "better-sqlite3"
import type * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import { performance } from "node:perf_hooks"
import * as Readline from "node:readline"
import Pg from "pg"
import * as Types from "../src/cdc/Types.js"
import { gitCommit } from "./host.js"
export { bundleWorker } from "./host.js"

// -----------------------------------------------------------------------------
// What the line provides
// -----------------------------------------------------------------------------

/** The rule a worker runs (the line's Cdc `Rule`, as JSON). */
export const ruleFor = (name: string, target: string, chunk: number) => ({
  name,
  tables: [...tableNames],
  target,
  schemaChanges: "apply",
  unsupportedTypes: "text",
  snapshotChunkSize: chunk
})

/** One line a worker prints on stdout every `statsEveryMs`, as JSON. */
export interface WorkerStats {
  readonly rule: string
  readonly running: boolean
  readonly snapshot: { readonly running: boolean; readonly rowsCopied: number; readonly table: string | undefined } | undefined
  readonly lastAppliedLsn: string | undefined
  readonly errors: number
  readonly lastError: string | undefined
}

/** How often a worker prints its stats line. */
export const statsEveryMs = 250

export interface Environment {
  /** The source primary (wal_level logical). */
  readonly sourceUrl: string
  /** The PostgreSQL target database. */
  readonly targetUrl: string
  /** The SQLite target file (absent at the start). */
  readonly sqlitePath: string
  /**
   * Starts a worker running `rule` (JSON of `ruleFor`) into `target`
   * ("pg" or "sqlite"): environment `CDC_SOURCE_URL`, `CDC_TARGET_URL`,
   * `CDC_SQLITE_PATH`, `CDC_RULE`, `CDC_TARGET`. It prints `WorkerStats`
   * lines on stdout and runs until killed.
   */
  readonly spawnWorker: (env: Readonly<Record<string, string>>) => ChildProcess.ChildProcess
  readonly log: (message: string) => void
  readonly line: string
}

export interface Plan {
  readonly bigRows: number
  readonly changes: number
  readonly chunk: number
  readonly out: string | undefined
}

/** `--rows N` (default 1 000 000), `--changes N` (10 000), `--chunk N` (5 000), `--out file`; any other flag throws. */
export const parseArgs = (argv: ReadonlyArray<string>): Plan => {
  let bigRows = 1_000_000
  let changes = 10_000
  let chunk = 5_000
  let out: string | undefined
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]
    const value = () => {
      const v = argv[++i]
      if (v === undefined) throw new Error(`${flag} needs a value`)
      return v
    }
    const count = () => {
      const n = Number(value())
      if (!Number.isInteger(n) || n <= 0) throw new Error(`${flag} must be a whole number above 0`)
      return n
    }
    if (flag === "--rows") bigRows = count()
    else if (flag === "--changes") changes = count()
    else if (flag === "--chunk") chunk = count()
    else if (flag === "--out") out = value()
    else throw new Error(`unknown flag ${flag}: --rows N, --changes N, --chunk N, --out file`)
  }
  return { bigRows, changes, chunk, out }
}

// -----------------------------------------------------------------------------
// Source schema and workload
// -----------------------------------------------------------------------------

const tableNames = ["big", "s1", "s2", "s3"] as const
type TableName = typeof tableNames[number]
const keys: Record<TableName, ReadonlyArray<string>> = { big: ["id"], s1: ["id"], s2: ["id"], s3: ["a", "b"] }

const schema = (bigRows: number) => [
  "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')",
  "CREATE DOMAIN positive_num AS numeric(12,2) CHECK (VALUE > 0)",
  "CREATE TABLE big (id bigint PRIMARY KEY, a int NOT NULL, b text, c timestamptz, d boolean)",
  `INSERT INTO big SELECT g, g % 1000, 'row ' || g, timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second', g % 2 = 0
     FROM generate_series(1, ${bigRows}) g`,
  "ANALYZE big",
  `CREATE TABLE s1 (id int PRIMARY KEY, i2 smallint, i8 bigint, n numeric(14,3), f float8, t text, b boolean,
     ts timestamptz, j jsonb, u uuid)`,
  `CREATE TABLE s2 (id bigint PRIMARY KEY, d date, iv interval, m mood, p positive_num, ia int[], ta text[],
     by bytea, lt timestamp, vc varchar(20))`,
  `CREATE TABLE s3 (a int, b text, r real, tsa timestamptz[], ma mood[], js json, ch char(4), tm time, f4 float4,
     note text, PRIMARY KEY (a, b))`
]

/** A small seeded generator: the same workload every run. */
const makeRandom = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const lit = (text: string) => `'${text.replace(/'/g, "''")}'`
const moods = ["sad", "ok", "happy"]

/** One statement of the workload; `altered` once the mid-stream columns exist. */
const statement = (random: () => number, bigRows: number, altered: boolean): string => {
  const pick = random()
  const roll = random()
  const n = Math.floor(random() * 1_000_000)
  const k = 1 + Math.floor(random() * 400)
  const text = [`t${n}`, `quote ' ${n}`, `ü ${n} 𝄞`, "", `line\nbreak ${n}`][n % 5]!
  const mood = moods[n % 3]!
  if (pick < 0.25) {
    // big: keys across the whole table, before and after the snapshot's cursor.
    const id = 1 + Math.floor(random() * (bigRows + 1000))
    if (roll < 0.4) {
      return `INSERT INTO big VALUES (${id}, ${n}, ${lit(text)}, now(), ${n % 2 === 0}) ON CONFLICT (id) DO UPDATE SET a = excluded.a, b = excluded.b`
    }
    if (roll < 0.8) return `UPDATE big SET a = a + 1, d = NOT d WHERE id = ${id}`
    return `DELETE FROM big WHERE id = ${id}`
  }
  if (pick < 0.5) {
    const extra = altered ? `, extra = ${lit(`x${n}`)}` : ""
    if (roll < 0.45) {
      const columns = altered ? ", extra" : ""
      const values = altered ? `, ${lit(`x${n}`)}` : ""
      return `INSERT INTO s1 (id, i2, i8, n, f, t, b, ts, j, u${columns}) VALUES (${k}, ${n % 30000}, ${n}${"0".repeat(8)},
        ${n}.${n % 1000}, ${n / 7}, ${lit(text)}, ${n % 2 === 0}, now(), ${lit(JSON.stringify({ n, s: text, a: [n, null] }))},
        gen_random_uuid()${values}) ON CONFLICT (id) DO UPDATE SET i8 = excluded.i8, t = excluded.t, j = excluded.j${altered ? ", extra = excluded.extra" : ""}`
    }
    if (roll < 0.65) return `UPDATE s1 SET f = f * 1.5, ts = ts + interval '1 day'${extra} WHERE id = ${k}`
    if (roll < 0.8) {
      const to = 1 + Math.floor(random() * 400)
      return `UPDATE s1 SET id = ${to} WHERE id = ${k} AND NOT EXISTS (SELECT 1 FROM s1 WHERE id = ${to})`
    }
    return `DELETE FROM s1 WHERE id = ${k}`
  }
  if (pick < 0.75) {
    const id = `${k}0000000000`
    const score = altered ? `, score = ${n % 100}` : ""
    if (roll < 0.45) {
      return `INSERT INTO s2 (id, d, iv, m, p, ia, ta, by, lt, vc) VALUES (${id}, date '2026-01-01' + ${n % 900},
        interval '${n % 40} days ${n % 24} hours ${n % 60} minutes', ${lit(mood)}, ${1 + (n % 90000)}.${n % 100},
        ARRAY[${n}, NULL, ${-n}], ARRAY[${lit(text)}, NULL, 'b'], '\\x${n.toString(16).padStart(8, "0")}',
        timestamp '2026-06-01 12:00' + ${n % 5000} * interval '1 minute', ${lit(`v${n}`)})
        ON CONFLICT (id) DO UPDATE SET iv = excluded.iv, m = excluded.m, ia = excluded.ia`
    }
    if (roll < 0.8) return `UPDATE s2 SET p = p + 1, ta = ta || ${lit(`u${n}`)}::text${score} WHERE id = ${id}`
    return `DELETE FROM s2 WHERE id = ${id}`
  }
  const b = `k${k % 50}`
  if (roll < 0.5) {
    return `INSERT INTO s3 VALUES (${k}, ${lit(b)}, ${n / 8}, ARRAY[now(), NULL], ARRAY[${lit(mood)}, 'ok']::mood[],
      ${lit(JSON.stringify({ k, note: text }))}, ${lit(`c${n % 100}`)}, time '10:00' + ${n % 3600} * interval '1 second',
      ${(n % 1000) / 4}, ${lit(text)}) ON CONFLICT (a, b) DO UPDATE SET r = excluded.r, ma = excluded.ma, note = excluded.note`
  }
  if (roll < 0.8) return `UPDATE s3 SET tm = tm + interval '1 minute', note = note || '!' WHERE a = ${k} AND b = ${lit(b)}`
  return `DELETE FROM s3 WHERE a = ${k} AND b = ${lit(b)}`
}

/** The mid-stream schema change: a column with a constant default, and one without. */
const alterations = [
  "ALTER TABLE s1 ADD COLUMN extra text DEFAULT 'fresh'",
  "ALTER TABLE s2 ADD COLUMN score int"
]

// -----------------------------------------------------------------------------
// Workers
// -----------------------------------------------------------------------------

interface Worker {
  readonly name: string
  readonly process: ChildProcess.ChildProcess
  last: WorkerStats | undefined
  peakRssKiB: number
  readonly exited: Promise<void>
}

/** VmHWM (peak resident set) of a live process, in KiB; 0 when unreadable. */
const peakRss = (pid: number | undefined): number => {
  if (pid === undefined) return 0
  try {
    const match = /VmHWM:\s+(\d+) kB/.exec(Fs.readFileSync(`/proc/${pid}/status`, "utf8"))
    return match ? Number(match[1]) : 0
  } catch {
    return 0
  }
}

const startWorker = (env: Environment, name: string, target: "pg" | "sqlite", plan: Plan): Worker => {
  const child = env.spawnWorker({
    CDC_SOURCE_URL: env.sourceUrl,
    CDC_TARGET_URL: env.targetUrl,
    CDC_SQLITE_PATH: env.sqlitePath,
    CDC_RULE: JSON.stringify(ruleFor(name, target, plan.chunk)),
    CDC_TARGET: target
  })
  const worker: Worker = {
    name,
    process: child,
    last: undefined,
    peakRssKiB: 0,
    exited: new Promise((resolve) => child.once("exit", () => resolve()))
  }
  const lines = Readline.createInterface({ input: child.stdout! })
  lines.on("line", (line) => {
    try {
      worker.last = JSON.parse(line) as WorkerStats
      worker.peakRssKiB = Math.max(worker.peakRssKiB, peakRss(child.pid))
    } catch {
      env.log(`${name}: ${line}`)
    }
  })
  child.stderr!.on("data", (chunk: Buffer) => env.log(`${name} stderr: ${chunk.toString().trimEnd()}`))
  return worker
}

const kill = async (worker: Worker) => {
  worker.peakRssKiB = Math.max(worker.peakRssKiB, peakRss(worker.process.pid))
  worker.process.kill("SIGKILL")
  await worker.exited
}

/** Polls `condition` every 100 ms until it holds; fails after `seconds` with `what`. */
const until = async (what: string, seconds: number, condition: () => boolean | Promise<boolean>) => {
  const deadline = performance.now() + seconds * 1000
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${seconds} s waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

// -----------------------------------------------------------------------------
// Comparison
// -----------------------------------------------------------------------------

export interface TableVerdict {
  readonly table: string
  readonly source: number
  readonly missing: number
  readonly extra: number
  readonly different: number
  readonly example: string | undefined
}

const compareMaps = (table: string, source: Map<string, string>, target: Map<string, string>): TableVerdict => {
  let missing = 0
  let different = 0
  let example: string | undefined
  for (const [key, row] of source) {
    const other = target.get(key)
    if (other === undefined) {
      missing++
      example ??= `missing ${key}: ${row.slice(0, 300)}`
    } else if (other !== row) {
      different++
      example ??= `key ${key}: source ${row.slice(0, 300)} target ${other.slice(0, 300)}`
    }
  }
  let extra = 0
  for (const key of target.keys()) {
    if (!source.has(key)) {
      extra++
      example ??= `extra ${key}`
    }
  }
  return { table, source: source.size, missing, extra, different, example }
}

/** Each row's key and `to_jsonb` text (the PostgreSQL target has the same column names and types, enums as text). */
const pgRows = async (client: Pg.Client, table: TableName): Promise<Map<string, string>> => {
  const key = keys[table].map((c) => `t.${c}`).join(", ")
  const result = await client.query<{ k: string; v: string }>(
    `SELECT jsonb_build_array(${key})::text AS k, to_jsonb(t)::text AS v FROM ${table} t`
  )
  return new Map(result.rows.map((r) => [r.k, r.v]))
}

/** A value as SQLite holds it, in a comparable text form. */
const normal = (value: unknown): string => {
  if (value === null || value === undefined) return "null"
  if (typeof value === "bigint") return `${value}`
  if (typeof value === "number") return Number.isInteger(value) ? `${value}` : `${value}`
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return `x${Buffer.from(value).toString("hex")}`
  return JSON.stringify(value)
}

/** The source's rows as the library maps them to SQLite (its documented type map, from catalog facts). */
const sourceAsSqlite = async (client: Pg.Client, table: TableName): Promise<Map<string, string>> => {
  // The text the library decodes: intervals in ISO 8601, as its source connections ask.
  await client.query("SET IntervalStyle = iso_8601")
  const result = await client.query({ text: `SELECT * FROM ${table}`, rowMode: "array", types: { getTypeParser: () => (v: string) => v } })
  await client.query("RESET IntervalStyle")
  const oids = result.fields.map((f) => f.dataTypeID)
  const facts = await client.query<Types.TypeFact>(Types.typeFactsQuery, [oids])
  const registry = Types.makeRegistry(facts.rows, "text")
  const columns = result.fields.map((f, i) => ({ name: f.name, type: registry.columnType(oids[i]!)! }))
  const keyIndexes = keys[table].map((k) => columns.findIndex((c) => c.name === k))
  const out = new Map<string, string>()
  for (const row of result.rows as Array<Array<string | null>>) {
    const values = columns.map((c, i) => row[i] === null ? null : c.type.toSqlite(c.type.decode(row[i]!)))
    const named = columns.map((c, i) => `${c.name}=${normal(values[i])}`).sort().join("|")
    out.set(keyIndexes.map((i) => normal(values[i])).join("/"), named)
  }
  return out
}

const sqliteRows = (db: Sqlite.Database, table: TableName): Map<string, string> => {
  const rows = db.prepare(`SELECT * FROM "${table}"`).safeIntegers(true).all() as Array<Record<string, unknown>>
  const out = new Map<string, string>()
  for (const row of rows) {
    const named = Object.keys(row).map((c) => `${c}=${normal(row[c])}`).sort().join("|")
    out.set(keys[table].map((k) => normal(row[k])).join("/"), named)
  }
  return out
}

// -----------------------------------------------------------------------------
// The run
// -----------------------------------------------------------------------------

export interface Result {
  readonly plan: Plan
  readonly line: string
  readonly committedChanges: number
  readonly transactions: number
  readonly killedAtRows: number
  readonly snapshotSeconds: number
  readonly convergeSeconds: number
  readonly peakRssMiB: Readonly<Record<string, ReadonlyArray<number>>>
  readonly pg: ReadonlyArray<TableVerdict>
  readonly sqlite: ReadonlyArray<TableVerdict>
  readonly errors: Readonly<Record<string, string | undefined>>
}

export const run = async (env: Environment, plan: Plan): Promise<Result> => {
  const t0 = performance.now()
  const seconds = () => (performance.now() - t0) / 1000
  const source = new Pg.Client({ connectionString: env.sourceUrl })
  const admin = new Pg.Client({ connectionString: env.sourceUrl })
  await source.connect()
  await admin.connect()
  const workers: Array<Worker> = []
  const peaks: Record<string, Array<number>> = { to_pg: [], to_sqlite: [] }
  try {
    env.log(`seeding the source (${plan.bigRows} rows in big)`)
    for (const sql of schema(plan.bigRows)) await admin.query(sql)
    const random = makeRandom(24)
    let committed = 0
    let transactions = 0
    let altered = false
    /** Writes transactions of 1 to 10 statements until `goal` row changes are committed, `perSecond` at most. */
    const write = async (goal: number, perSecond: number, stop?: () => boolean) => {
      const started = performance.now()
      let sent = 0
      while (committed < goal && !(stop?.() ?? false)) {
        const size = 1 + Math.floor(random() * 10)
        const statements = Array.from({ length: size }, () => statement(random, plan.bigRows, altered))
        const results = (await source.query(`BEGIN; ${statements.join("; ")}; COMMIT`)) as unknown as Array<Pg.QueryResult>
        committed += results.reduce((n, r) => n + (r.command === "BEGIN" || r.command === "COMMIT" ? 0 : r.rowCount ?? 0), 0)
        transactions++
        sent++
        const ahead = sent / perSecond * 1000 - (performance.now() - started)
        if (ahead > 0) await new Promise((resolve) => setTimeout(resolve, ahead))
      }
    }
    // A rule whose snapshot finished before the kill has none to resume.
    const finished = new Set<string>()
    const spawn = () => {
      for (const w of workers) if (w.last?.snapshot !== undefined && !w.last.snapshot.running) finished.add(w.name)
      workers.length = 0
      workers.push(startWorker(env, "to_pg", "pg", plan), startWorker(env, "to_sqlite", "sqlite", plan))
    }
    const copied = (name: string) => workers.find((w) => w.name === name)?.last?.snapshot?.rowsCopied ?? 0

    env.log("starting the workers; the workload writes while they snapshot")
    const snapshotStart = seconds()
    spawn()
    const killAt = Math.floor(plan.bigRows * 0.4)
    await write(plan.changes * 0.45, 50, () => copied("to_pg") >= killAt)
    await until("40% of big copied", 600, () => copied("to_pg") >= killAt)
    const killedAtRows = copied("to_pg")
    env.log(`fault: SIGKILL of both workers at ${killedAtRows} rows copied; starting them again`)
    for (const w of workers) {
      await kill(w)
      peaks[w.name]!.push(w.peakRssKiB / 1024)
    }
    spawn()
    await write(plan.changes / 2, 200)
    env.log(`adding columns mid-stream after ${committed} committed row changes`)
    for (const sql of alterations) await admin.query(sql)
    altered = true
    await write(plan.changes, 200)
    const goal = (await admin.query<{ lsn: string }>("SELECT pg_current_wal_lsn()::text AS lsn")).rows[0]!.lsn
    env.log(`workload done: ${committed} row changes in ${transactions} transactions; waiting for the slots to confirm ${goal}`)
    await until("both rules to finish the snapshot and confirm the source's position", 900, async () => {
      const snapshotsDone = workers.every((w) =>
        w.last !== undefined && (w.last.snapshot === undefined ? finished.has(w.name) : !w.last.snapshot.running)
      )
      if (!snapshotsDone) return false
      const slots = await admin.query<{ behind: boolean }>(
        "SELECT bool_or(confirmed_flush_lsn IS NULL OR confirmed_flush_lsn < $1::pg_lsn) AS behind FROM pg_replication_slots WHERE slot_name IN ('cdc_to_pg', 'cdc_to_sqlite')",
        [goal]
      )
      return slots.rows[0]!.behind === false
    })
    const convergeSeconds = seconds()
    const errors = Object.fromEntries(workers.map((w) => [w.name, w.last?.lastError]))
    for (const w of workers) {
      await kill(w)
      peaks[w.name]!.push(w.peakRssKiB / 1024)
    }
    env.log("comparing the targets with the source row by row")
    const target = new Pg.Client({ connectionString: env.targetUrl })
    await target.connect()
    const db = new Sqlite(env.sqlitePath, { readonly: true })
    try {
      const pg: Array<TableVerdict> = []
      const sqlite: Array<TableVerdict> = []
      for (const table of tableNames) {
        pg.push(compareMaps(table, await pgRows(source, table), await pgRows(target, table)))
        sqlite.push(compareMaps(table, await sourceAsSqlite(source, table), sqliteRows(db, table)))
      }
      return {
        plan,
        line: env.line,
        committedChanges: committed,
        transactions,
        killedAtRows,
        snapshotSeconds: convergeSeconds - snapshotStart,
        convergeSeconds,
        peakRssMiB: peaks,
        pg,
        sqlite,
        errors
      }
    } finally {
      db.close()
      await target.end()
    }
  } finally {
    for (const w of workers) if (w.process.exitCode === null && w.process.signalCode === null) await kill(w)
    await source.end().catch(() => {})
    await admin.end().catch(() => {})
  }
}

/** True when every table of both targets equals the source and every worker stayed within 256 MiB. */
export const passed = (result: Result): boolean =>
  [...result.pg, ...result.sqlite].every((v) => v.missing === 0 && v.extra === 0 && v.different === 0) &&
  Object.values(result.peakRssMiB).every((peaks) => peaks.every((p) => p <= 256))

/** The Markdown report. */
export const render = (result: Result): string => {
  const verdicts = (name: string, list: ReadonlyArray<TableVerdict>) =>
    list.map((v) => `| ${name} | ${v.table} | ${v.source} | ${v.missing} | ${v.extra} | ${v.different} |`).join("\n")
  const examples = [...result.pg, ...result.sqlite].flatMap((v) => v.example ? [`- ${v.table}: ${v.example}`] : [])
  return [
    `# CDC acceptance scenario (${result.line})`,
    "",
    `Commit ${gitCommit() ?? "?"}, ${new Date().toISOString().slice(0, 10)}. \`big\`: ${result.plan.bigRows} rows; chunk ${result.plan.chunk} rows;`,
    `${result.committedChanges} row changes in ${result.transactions} source transactions written while the rules ran;`,
    `both workers SIGKILLed at ${result.killedAtRows} rows of \`big\` copied by the PostgreSQL rule and started again;`,
    "columns added to `s1` (constant default) and `s2` (no default) halfway through the workload.",
    "",
    `Snapshot + stream until both slots confirmed the source's last position: ${result.snapshotSeconds.toFixed(1)} s.`,
    "",
    "| target | table | source rows | missing | extra | different |",
    "|---|---|---:|---:|---:|---:|",
    verdicts("PostgreSQL", result.pg),
    verdicts("SQLite", result.sqlite),
    "",
    "Peak RSS of each worker process (VmHWM), per run (before the kill, after restart), bound 256 MiB:",
    "",
    ...Object.entries(result.peakRssMiB).map(([name, peaks]) => `- ${name}: ${peaks.map((p) => `${p.toFixed(0)} MiB`).join(", ")}`),
    "",
    ...(examples.length > 0 ? ["First difference per table:", "", ...examples, ""] : []),
    ...Object.entries(result.errors).flatMap(([name, e]) => e ? [`- ${name} last error: ${e}`] : []),
    `**Verdict: ${passed(result) ? "passed" : "FAILED"}.**`,
    ""
  ].join("\n")
}
