/**
 * The CDC memory benchmark's parts shared by both lines' `bench/cdcMemory.ts`
 * (issue 24: peak RSS while one large source transaction is applied): its
 * options, the table and the transaction (SQL text), the two rules, the
 * child's environment, the child's RSS sampler, running the bundled child,
 * and the Markdown table with its verdict against the issue's bound. Each
 * line's file keeps the servers, the CDC service and the child's program.
 * Plain Node, no Effect. Not shipped.
 */
import * as ChildProcess from "node:child_process"
import { defaultBatchSize } from "../src/cdc/Changes.js"

/** Issue 24's bound on a CDC process's peak RSS, in MiB. */
export const rssBoundMiB = 256

/** What a run does. */
export interface MemoryOptions {
  /** Rows of the one source transaction; default 1 000 000. */
  readonly rows: number
  /** The rules' `batchSize`; default the library's (`Changes.defaultBatchSize`, 2 000). */
  readonly batchSize: number
  /** The rules' `atomicity`; default "transaction". */
  readonly atomicity: "transaction" | "batch"
  /** The child's V8 old space cap in MiB (`--max-old-space-size`); 0 (default) leaves Node's own. */
  readonly heap: number
}

const flagValue = (argv: ReadonlyArray<string>, flag: string): string | undefined => {
  const at = argv.indexOf(flag)
  if (at < 0) return undefined
  const value = argv[at + 1]
  if (value === undefined || value.startsWith("--")) throw new Error(`${flag} needs a value`)
  return value
}

const wholeNumber = (argv: ReadonlyArray<string>, flag: string, fallback: number, min: number): number => {
  const text = flagValue(argv, flag)
  if (text === undefined) return fallback
  const n = Number(text)
  if (!Number.isInteger(n) || n < min) throw new Error(`${flag} must be a whole number of at least ${min}, got "${text}"`)
  return n
}

/** The options in `argv` (`--rows N --batch-size B --atomicity transaction|batch --heap MiB`); throws an error naming a bad one. */
export const parseMemoryOptions = (argv: ReadonlyArray<string>): MemoryOptions => {
  const atomicity = flagValue(argv, "--atomicity") ?? "transaction"
  if (atomicity !== "transaction" && atomicity !== "batch") {
    throw new Error(`--atomicity must be "transaction" or "batch", got "${atomicity}"`)
  }
  return {
    rows: wholeNumber(argv, "--rows", 1_000_000, 1),
    batchSize: wholeNumber(argv, "--batch-size", defaultBatchSize, 1),
    atomicity,
    heap: wholeNumber(argv, "--heap", 0, 0)
  }
}

/** The Node flags that cap the child's heap as `options.heap` says (none for 0). */
export const heapFlags = (options: MemoryOptions): ReadonlyArray<string> =>
  options.heap > 0 ? [`--max-old-space-size=${options.heap}`] : []

/** The source table: 10 columns of varied types (those of the CDC benchmark's mix). */
export const createTable = `CREATE TABLE big (id int8 PRIMARY KEY, qty int4 NOT NULL, name text, price numeric(12,2),
  at timestamptz, active boolean, meta jsonb, ref uuid, score float8, day date)`

/** The one source transaction: `rows` rows in one `INSERT … SELECT generate_series`. */
export const insertRows = (rows: number): string =>
  `INSERT INTO big SELECT g, g % 1000, md5(g::text), ((g % 100000) / 100.0)::numeric(12,2),
  timestamptz '2026-01-01' + g * interval '1 second', g % 2 = 0, jsonb_build_object('g', g, 'tags', jsonb_build_array('x', g)),
  md5(g::text)::uuid, g * 0.5, date '2026-01-01' + (g % 365)::int FROM generate_series(1, ${rows}) g`

/** The two targets, in the order they run. */
export type MemoryTarget = "SQLite" | "PostgreSQL"

/** A rule of the run, in the shape both lines' `Cdc.Rule` accept. */
export interface MemoryRule {
  readonly name: string
  readonly tables: ReadonlyArray<string>
  readonly target: MemoryTarget
  readonly snapshot: false
  readonly batchSize: number
  readonly atomicity: "transaction" | "batch"
}

/** One rule per target over `big`, without snapshot (the transaction comes through the stream). */
export const memoryRules = (options: MemoryOptions): ReadonlyArray<MemoryRule> =>
  (["SQLite", "PostgreSQL"] as const).map((target) => ({
    name: target === "SQLite" ? "big_lite" : "big_pg",
    tables: ["big"],
    target,
    snapshot: false,
    batchSize: options.batchSize,
    atomicity: options.atomicity
  }))

/** What the child needs: its rule and where the source and the targets are. */
export interface ChildInput {
  readonly rule: MemoryRule
  /** The source primary's URL. */
  readonly source: string
  /** The PostgreSQL target's URL. */
  readonly pg: string
  /** The SQLite target's file. */
  readonly sqlite: string
}

/** `input` as the child's environment variables. */
export const childEnv = (input: ChildInput): Readonly<Record<string, string>> => ({
  CDC_RULE: JSON.stringify(input.rule),
  CDC_SOURCE: input.source,
  CDC_PG: input.pg,
  CDC_SQLITE: input.sqlite
})

/** The child's input read back from `env`; throws an error naming a missing variable. */
export const readChildEnv = (env: Readonly<Record<string, string | undefined>>): ChildInput => {
  const get = (name: string) => {
    const value = env[name]
    if (value === undefined) throw new Error(`the CDC memory child needs ${name}`)
    return value
  }
  return { rule: JSON.parse(get("CDC_RULE")) as MemoryRule, source: get("CDC_SOURCE"), pg: get("CDC_PG"), sqlite: get("CDC_SQLITE") }
}

/** What the child reports. */
export interface ChildResult {
  readonly target: MemoryTarget
  readonly changes: number
  readonly millis: number
  /** RSS when the child started, before any client. */
  readonly baselineRssMiB: number
  readonly peakRssMiB: number
}

/**
 * Samples this process's RSS every `intervalMillis` from now on; `stop` ends
 * the sampling (with one last sample) and gives the RSS at the start and the
 * peak, in whole MiB.
 */
export const sampleRss = (intervalMillis = 10): { readonly stop: () => { readonly baselineRssMiB: number; readonly peakRssMiB: number } } => {
  const baseline = process.memoryUsage().rss
  let peak = baseline
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss)
  }, intervalMillis)
  const mib = (n: number) => Math.round(n / 2 ** 20)
  return {
    stop: () => {
      clearInterval(timer)
      peak = Math.max(peak, process.memoryUsage().rss)
      return { baselineRssMiB: mib(baseline), peakRssMiB: mib(peak) }
    }
  }
}

/**
 * Runs the bundled child `file` on plain Node (with `heapFlags` and the
 * built package's condition) for `input`, and returns what it printed last;
 * throws with the end of its stderr when it fails.
 */
export const runChild = (file: string, options: MemoryOptions, input: ChildInput): ChildResult => {
  const out = ChildProcess.spawnSync(process.execPath, [...heapFlags(options), "--conditions=effect-sql-router-dist", file, "--child"], {
    env: { ...process.env, ...childEnv(input) },
    encoding: "utf8",
    maxBuffer: 1 << 20
  })
  if (out.status !== 0) {
    throw new Error(`the CDC memory child for ${input.rule.target} failed (${out.status ?? out.signal}): ${out.stderr.slice(-2000)}`)
  }
  return JSON.parse(out.stdout.trim().split("\n").at(-1)!) as ChildResult
}

/** The run's Markdown: what ran, then per target changes, seconds, RSS before and at peak, and whether the peak is within the bound. */
export const renderMemory = (line: string, options: MemoryOptions, results: ReadonlyArray<ChildResult>): string =>
  [
    `${line}: source transaction of ${options.rows} rows, batchSize ${options.batchSize}, atomicity ${options.atomicity}${
      options.heap > 0 ? `, child heap capped at ${options.heap} MiB` : ", Node's default heap"
    }:`,
    `| target | changes | time (s) | RSS before (MiB) | peak RSS (MiB) | <= ${rssBoundMiB} MiB |`,
    "|---|---:|---:|---:|---:|---|",
    ...results.map((r) =>
      `| ${r.target} | ${r.changes} | ${(r.millis / 1000).toFixed(1)} | ${r.baselineRssMiB} | ${r.peakRssMiB} | ${r.peakRssMiB <= rssBoundMiB ? "yes" : "no"} |`
    )
  ].join("\n")
