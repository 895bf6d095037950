/**
 * Turns a run into Markdown: machine, method, the targets of DESIGN's
 * "Performance targets" with measured values, one table per workload, the
 * micro-benchmarks and what was skipped. Ratios are medians of per-round
 * ratios against raw `pg` measured in the same round (DESIGN item 6).
 */
import type { LoadResult } from "./load.js"
import * as Fs from "node:fs"
import type { CdcBenchResult } from "./cdc.js"
import { renderCdc } from "./cdc.js"
import type { EventLogResult } from "./eventLog.js"
import type { LsnResult } from "./lsn.js"
import type { MicroResults } from "./micro.js"
import type { WorkloadKey } from "./systems.js"

export interface Machine {
  readonly cpu: string
  readonly cores: number
  readonly memoryGiB: number
  readonly os: string
  readonly node: string
  readonly postgres: string
  readonly pgpool: string | undefined
  /** 1-minute load average when the run started and when it ended: other work on the host shows here. */
  readonly load: { readonly start: number; readonly end: number }
  readonly libraries: ReadonlyArray<readonly [name: string, version: string]>
}

export interface Settings {
  readonly mode: string
  readonly rounds: number
  readonly durationMs: number
  readonly warmupMs: number
  readonly poolSize: number
  readonly replicas: number
}

export interface SystemInfo {
  readonly key: string
  readonly name: string
  readonly routing: string
  readonly readConnections: number
  readonly status: { readonly _tag: "Ran" } | { readonly _tag: "Skipped"; readonly reason: string }
  readonly summary?: string | undefined
}

export interface WorkloadInfo {
  readonly key: WorkloadKey
  readonly title: string
  readonly concurrency: number
  /** The baseline's workload to compare with (fibers workloads: raw pg has no fibers). */
  readonly against?: WorkloadKey | undefined
}

export interface Cell {
  readonly system: string
  readonly workload: WorkloadKey
  readonly round: number
  readonly result: LoadResult
}

export interface RunData {
  readonly date: Date
  readonly command: string
  readonly elapsedMs: number
  readonly machine: Machine
  readonly settings: Settings
  readonly baseline: string
  readonly systems: ReadonlyArray<SystemInfo>
  readonly workloads: ReadonlyArray<WorkloadInfo>
  readonly cells: ReadonlyArray<Cell>
  readonly micro: MicroResults | undefined
  readonly lsn?: LsnResult | undefined
  readonly eventLog?: EventLogResult | undefined
  readonly cdc?: CdcBenchResult | undefined
  readonly notes?: ReadonlyArray<string> | undefined
}

// ---------------------------------------------------------------------------
// Statistics

export const median = (values: ReadonlyArray<number>): number => {
  const finite = values.filter(Number.isFinite).sort((a, b) => a - b)
  if (finite.length === 0) return Number.NaN
  const mid = finite.length >> 1
  return finite.length % 2 ? finite[mid]! : (finite[mid - 1]! + finite[mid]!) / 2
}

const cellsOf = (data: RunData, system: string, workload: WorkloadKey) =>
  data.cells.filter((cell) => cell.system === system && cell.workload === workload)

export interface Ratio {
  readonly median: number
  readonly min: number
  readonly max: number
  readonly rounds: number
}

/** Median, min and max over rounds of `qps(system) / qps(against)`, pairing cells of the same round. */
export const ratio = (data: RunData, system: string, against: string, workload: WorkloadKey): Ratio | undefined => {
  // On a fibers workload the baseline runs the promise-style twin of it.
  const againstWorkload = against === data.baseline
    ? data.workloads.find((w) => w.key === workload)?.against ?? workload
    : workload
  const reference = new Map(cellsOf(data, against, againstWorkload).map((cell) => [cell.round, cell.result.qps]))
  const values: Array<number> = []
  for (const cell of cellsOf(data, system, workload)) {
    const base = reference.get(cell.round)
    if (base !== undefined && base > 0) values.push(cell.result.qps / base)
  }
  if (values.length === 0) return undefined
  return { median: median(values), min: Math.min(...values), max: Math.max(...values), rounds: values.length }
}

export interface Aggregate {
  readonly qps: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly cpuUsPerOp: number
  readonly gcUsPerOp: number
  readonly errors: number
  readonly firstError: string | undefined
  readonly rounds: number
}

/** Medians over rounds of one system on one workload. */
export const aggregate = (data: RunData, system: string, workload: WorkloadKey): Aggregate | undefined => {
  const cells = cellsOf(data, system, workload)
  if (cells.length === 0) return undefined
  return {
    qps: median(cells.map((c) => c.result.qps)),
    p50Ms: median(cells.map((c) => c.result.p50Ms)),
    p99Ms: median(cells.map((c) => c.result.p99Ms)),
    cpuUsPerOp: median(cells.map((c) => c.result.cpuUsPerOp)),
    gcUsPerOp: median(cells.map((c) => c.result.gcUsPerOp)),
    errors: cells.reduce((n, c) => n + c.result.errors, 0),
    firstError: cells.find((c) => c.result.firstError !== undefined)?.result.firstError,
    rounds: cells.length
  }
}

// ---------------------------------------------------------------------------
// Formatting

const int = (n: number) => Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "–"
const fixed = (n: number, digits: number) => Number.isFinite(n) ? n.toFixed(digits) : "–"
const ms = (n: number) => Number.isFinite(n) ? (n < 1 ? n.toFixed(3) : n < 10 ? n.toFixed(2) : n.toFixed(1)) : "–"
const times = (n: number) => Number.isFinite(n) ? `${n.toFixed(2)}×` : "–"
const ratioText = (r: Ratio | undefined) => r === undefined ? "–" : times(r.median)
const rangeText = (r: Ratio | undefined) => r === undefined || r.rounds < 2 ? "–" : `${r.min.toFixed(2)}–${r.max.toFixed(2)}`
const escapeCell = (text: string) => text.replace(/\|/g, "\\|").replace(/\n/g, " ")

const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>, align?: string): string => {
  const lines = [
    `| ${header.join(" | ")} |`,
    `|${align ?? header.map((_, i) => (i === 0 ? "---" : "---:")).join("|")}|`,
    ...rows.map((row) => `| ${row.map(escapeCell).join(" | ")} |`)
  ]
  return lines.join("\n")
}

// ---------------------------------------------------------------------------
// Targets

type Status = "met" | "missed" | "not measured"

interface Target {
  readonly item: string
  readonly target: string
  readonly measured: string
  readonly status: Status
  readonly detail?: string | undefined
}

const judge = (value: number | undefined, ok: (v: number) => boolean): Status =>
  value === undefined || !Number.isFinite(value) ? "not measured" : ok(value) ? "met" : "missed"

const ran = (data: RunData, key: string) => data.systems.find((s) => s.key === key && s.status._tag === "Ran") !== undefined

const whyNot = (data: RunData, key: string) => {
  const system = data.systems.find((s) => s.key === key)
  return system === undefined
    ? `${key} was not selected`
    : system.status._tag === "Skipped"
    ? `${system.name} skipped: ${system.status.reason}`
    : undefined
}

export const targets = (data: RunData): ReadonlyArray<Target> => {
  const out: Array<Target> = []
  const b = data.baseline
  const vsPgClient = ratio(data, "routed", "pgclient", "select1-c32")
  out.push({
    item: "1",
    target: "RoutedClient ≥ 1.3× PgClient direct, `SELECT 1` c=32",
    measured: vsPgClient ? `${times(vsPgClient.median)} (rounds ${rangeText(vsPgClient)})` : "–",
    status: judge(vsPgClient?.median, (v) => v >= 1.3),
    detail: ran(data, "routed") ? undefined : whyNot(data, "routed")
  })
  const vsPg = ratio(data, "routed", b, "select1-c32")
  out.push({
    item: "1",
    target: "RoutedClient ≥ 0.70× raw pg, `SELECT 1` c=32 (stretch 0.80×)",
    measured: vsPg ? `${times(vsPg.median)} (rounds ${rangeText(vsPg)})` : "–",
    status: judge(vsPg?.median, (v) => v >= 0.7),
    detail: ran(data, "routed") ? undefined : whyNot(data, "routed")
  })
  const fibers = ratio(data, "routed", b, "select1-c32-fibers")
  out.push({
    item: "1",
    target: "RoutedClient in long-lived fibers ≥ 0.70× raw pg, `SELECT 1` c=32",
    measured: fibers ? `${times(fibers.median)} (rounds ${rangeText(fibers)})` : "–",
    status: judge(fibers?.median, (v) => v >= 0.7),
    detail: ran(data, "routed") ? undefined : whyNot(data, "routed")
  })
  for (const [key, label, bound] of [
    ["routed-timeout", "`readTimeout` on costs ≤ 5 % (× RoutedClient without)", 0.95],
    ["withread", "`withRead` within 10 % of a routed statement (× RoutedClient)", 0.9]
  ] as const) {
    const r = ratio(data, key, "routed", "select1-c32")
    out.push({
      item: "1",
      target: `${label}, \`SELECT 1\` c=32`,
      measured: r ? `${times(r.median)} (rounds ${rangeText(r)})` : "–",
      status: judge(r?.median, (v) => v >= bound),
      detail: ran(data, key) ? undefined : whyNot(data, key)
    })
  }
  const gc = aggregate(data, "routed", "select1-c32")?.gcUsPerOp
  out.push({
    item: "2",
    target: "GC ≤ 8 µs per query (RoutedClient, `SELECT 1` c=32)",
    measured: gc === undefined ? "–" : `${fixed(gc, 1)} µs`,
    status: judge(gc, (v) => v <= 8)
  })
  const decision = data.micro?.decision.find((d) => d.label.startsWith("pick + release, round-robin"))
  out.push({
    item: "2",
    target: "router decision (synchronous pick + in-flight count, release in the callback) ≤ 2 µs per statement",
    measured: decision ? `${fixed(decision.cpuUsPerOp, 2)} µs CPU (wall ${fixed(decision.usPerOp, 2)} µs), best of repetitions` : "–",
    status: judge(decision?.cpuUsPerOp, (v) => v <= 2)
  })
  for (const key of ["routed", "withread", "routed-overflow", "withread-overflow"]) {
    const scale = ratio(data, key, b, "sleep-c32")
    const name = data.systems.find((s) => s.key === key)?.name ?? key
    out.push({
      item: "3",
      target: `${name}: \`pg_sleep(0.005)\` c=32 ≥ 2.8× primary alone (pool P)`,
      measured: scale ? `${times(scale.median)} (rounds ${rangeText(scale)})` : "–",
      status: judge(scale?.median, (v) => v >= 2.8),
      detail: ran(data, key) ? undefined : whyNot(data, key)
    })
  }
  const cached = data.micro?.classifier.find((c) => c.label.startsWith("cached, the same"))
  const fresh = data.micro?.classifier.find((c) => c.label.startsWith("cached, a fresh"))
  const uncached = data.micro?.classifier.find((c) => c.label.startsWith("uncached"))
  out.push({
    item: "5",
    target: "classifier ≥ 1M cached classifications/s",
    measured: cached ? `${int(cached.opsPerSec)}/s (fresh strings: ${fresh ? int(fresh.opsPerSec) : "–"}/s)` : "–",
    status: judge(cached?.opsPerSec, (v) => v >= 1_000_000)
  })
  out.push({
    item: "5",
    target: "classifier ≥ 100k uncached classifications/s",
    measured: uncached ? `${int(uncached.opsPerSec)}/s` : "–",
    status: judge(uncached?.opsPerSec, (v) => v >= 100_000)
  })
  return out
}

// ---------------------------------------------------------------------------
// Rendering

const workloadTable = (data: RunData, workload: WorkloadInfo): string => {
  const withRounds = data.settings.rounds > 1
  const scaleOut = workload.key === "sleep-c32"
  const header = [
    "system",
    "qps",
    "p50 ms",
    "p99 ms",
    "client CPU µs/query",
    "GC pause µs/query",
    ...(scaleOut ? ["read connections"] : []),
    `× raw pg${withRounds ? " (median)" : ""}`,
    ...(withRounds ? ["× raw pg, range over rounds"] : [])
  ]
  const rows: Array<Array<string>> = []
  for (const system of data.systems) {
    const agg = aggregate(data, system.key, workload.key)
    if (agg === undefined) continue
    const r = ratio(data, system.key, data.baseline, workload.key)
    rows.push([
      system.name + (agg.errors > 0 ? ` ⚠ ${agg.errors} errors` : ""),
      int(agg.qps),
      ms(agg.p50Ms),
      ms(agg.p99Ms),
      fixed(agg.cpuUsPerOp, 0),
      fixed(agg.gcUsPerOp, 1),
      ...(scaleOut ? [String(system.readConnections)] : []),
      ratioText(r),
      ...(withRounds ? [rangeText(r)] : [])
    ])
  }
  if (rows.length === 0) return ""
  return [`### ${workload.title}`, "", table(header, rows)].join("\n")
}

const errorsList = (data: RunData): Array<string> => {
  const out: Array<string> = []
  for (const system of data.systems) {
    for (const workload of data.workloads) {
      const agg = aggregate(data, system.key, workload.key)
      if (agg && agg.errors > 0) out.push(`- ${system.name}, ${workload.key}: ${agg.errors} errors, first: ${agg.firstError ?? "?"}`)
    }
  }
  return out
}

export const render = (data: RunData): string => {
  const { machine, settings } = data
  const parts: Array<string> = []
  parts.push(
    "# Benchmarks",
    "",
    `Generated by \`${data.command}\` on ${data.date.toISOString().replace("T", " ").slice(0, 16)} UTC ` +
      `(${settings.mode} run, ${(data.elapsedMs / 60_000).toFixed(1)} min). This file is overwritten by every run; ` +
      "the harness lives in `bench/` (see `bench/run.ts` for the flags).",
    "",
    "## Machine",
    "",
    table(["", ""], [
      ["CPU", `${machine.cpu}, ${machine.cores} cores`],
      ["memory", `${machine.memoryGiB.toFixed(0)} GiB`],
      ["OS", machine.os],
      ["Node.js", machine.node],
      ["PostgreSQL", `${machine.postgres} (embedded binaries), primary + ${settings.replicas} streaming replicas on loopback, same host`],
      ["pgpool-II", machine.pgpool ?? "not installed"],
      ["load average (1 min)", `${machine.load.start.toFixed(2)} at start, ${machine.load.end.toFixed(2)} at end`],
      ["libraries", machine.libraries.map(([name, version]) => `${name} ${version}`).join(", ")]
    ], "---|---"),
    "",
    "## Method",
    "",
    `- Pool size P = ${settings.poolSize} connections per server for every system (exceptions are named in the system list).`,
    `- Closed loop: C workers each await one query at a time. Every cell runs ${settings.warmupMs} ms of warm-up, ` +
      `then ${settings.durationMs} ms measured; qps counts queries finished in the window, p50/p99 are over the queries ` +
      "that started and finished in it.",
    `- ${settings.rounds} round${settings.rounds === 1 ? "" : "s"}: each round runs every system once per workload, ` +
      "the order rotated from round to round and workload to workload. Ratios are the median of per-round ratios " +
      "against raw pg in the same round (DESIGN item 6); qps and latencies are medians over rounds.",
    "- Client CPU is the benchmark process's user + system CPU over the window divided by the queries completed; " +
      "\"GC pause\" is the wall time of the garbage-collection pauses in the same window per query (stretched, like " +
      "everything, when the host is busy). Client and servers share the " +
      "same cores, so client CPU per query bounds every CPU-bound row.",
    "- Effect systems build their layer once in a `ManagedRuntime`; each query is one `runtime.runPromise` of a statement " +
      "built for that call.",
    ""
  )

  parts.push("## Targets (DESIGN, \"Performance targets\")", "")
  parts.push(table(
    ["item", "target", "measured", "status"],
    targets(data).map((t) => [t.item, t.target, t.measured + (t.detail ? ` — ${t.detail}` : ""), t.status]),
    "---|---|---|---"
  ))
  const peerRows = data.systems.filter((s) => s.key !== data.baseline && s.status._tag === "Ran").map((system) => [
    system.name,
    ...data.workloads.map((w) => ratioText(ratio(data, system.key, data.baseline, w.key)))
  ])
  parts.push(
    "",
    "Item 4 (peers on the same workloads), median ratio against raw pg:",
    "",
    table(["system", ...data.workloads.map((w) => w.key)], peerRows),
    ""
  )

  parts.push("## Results by workload", "")
  for (const workload of data.workloads) {
    const text = workloadTable(data, workload)
    if (text) parts.push(text, "")
    if (workload.key === "sleep-c32") {
      parts.push(
        "For this workload \"× raw pg\" is the scale-out against the primary alone with pool P (DESIGN item 3). " +
          "\"read connections\" is how many server connections can hold a `pg_sleep` at once: with 5 ms per query " +
          `its ceiling is about connections / 5 ms; concurrency 32 caps any system at 32 / P = ${(32 / settings.poolSize).toFixed(1)}×.`,
        ""
      )
    }
  }
  const errors = errorsList(data)
  if (errors.length > 0) parts.push("Errors during the run:", "", ...errors, "")

  if (data.lsn) {
    parts.push(
      "## Read-your-writes: LSN capture",
      "",
      "A write transaction (`UPDATE` of one row in `SqlRouter.transaction`, concurrency 1, primary pool of 2) with and " +
        "without a causal session. In a session the router reads `pg_current_wal_insert_lsn()` on the same connection " +
        `after COMMIT. Medians over interleaved rounds, ${data.lsn.transactions} transactions of each kind.`,
      "",
      "| transaction | µs per transaction |",
      "|---|---:|",
      `| without a session | ${data.lsn.plainUs.toFixed(0)} |`,
      `| in a causal session (LSN captured) | ${data.lsn.sessionUs.toFixed(0)} |`,
      `| added by the capture | ${data.lsn.addedUs.toFixed(0)} (${((data.lsn.addedUs / data.lsn.plainUs) * 100).toFixed(0)} %) |`,
      ""
    )
  }

  if (data.eventLog) {
    const e = data.eventLog
    parts.push(
      "## Event log",
      "",
      "`EventLog` on the router (primary + " + e.replicas + " replicas, pool P per server). An append is one primary " +
        "transaction: read the system version, `appendEvent` at it; the 16 appenders race on the same versions and decide " +
        "again on `VersionMismatch` (only successful appends count). Reads: `readOnly` pages of 100 events at random " +
        `versions (concurrency 8, replicas), and one \`EventLog.stream\` (pages of 1000) over a ${e.readLogSize}-event log. ` +
        `Medians of ${e.rounds} interleaved round(s).`,
      "",
      "| workload | per second |",
      "|---|---:|",
      `| appends, 1 appender | ${e.appendsPerSecond1.toFixed(0)} |`,
      `| appends, 16 appenders (${e.conflictsPerAppend16.toFixed(2)} VersionMismatch per append) | ${e.appendsPerSecond16.toFixed(0)} |`,
      `| events read, \`readOnly\` pages of 100, c=8 | ${e.pageEventsPerSecond.toFixed(0)} |`,
      `| events read, \`stream\` (pageSize 1000) | ${e.streamEventsPerSecond.toFixed(0)} |`,
      ""
    )
  }

  if (data.cdc) parts.push(renderCdc(data.cdc))

  if (data.micro) {
    parts.push(
      "## Micro-benchmarks",
      "",
      "Router decision: a router built on the cluster (`makeState`, health probes off, 2 replicas); one iteration " +
        "is `pickReplica` (the read path's pick: the strategy reads the health TRefs and writes the cursor and " +
        "in-flight count in one synchronous step, no STM commit) then the release as the driver's callback does it, " +
        "in one fiber; the reference row makes the same choice as one STM commit (`Selection.acquire`). All steps " +
        "run interleaved, repetition " +
        "after repetition; each figure is the best repetition, by wall time and by process CPU time (other work on the " +
        "host stretches the first, hardly the second).",
      "",
      table(
        ["step", "wall µs per op", "CPU µs per op", "iterations"],
        data.micro.decision.map((d) => [d.label, fixed(d.usPerOp, 3), fixed(d.cpuUsPerOp, 3), int(d.iterations)])
      ),
      "",
      `Classifier: \`Classifier.make()\` over a corpus of ${data.micro.corpusSize} statements ` +
        `(${data.micro.corpusReads} reads, ${data.micro.corpusSize - data.micro.corpusReads} writes; comments, literals, ` +
        "CTEs, locking clauses, side-effecting functions), interleaved repetitions, best one.",
      "",
      table(
        ["mode", "classifications/s (wall)", "per CPU-second", "iterations"],
        data.micro.classifier.map((c) => [c.label, int(c.opsPerSec), int(c.opsPerCpuSec), int(c.iterations)])
      ),
      "",
      "Statement paths without the network: every connection replaced by a fake one whose answer arrives on a later " +
        "event-loop turn (`setImmediate`), 32 concurrent callers, one `runPromise` per statement as in the load runs. " +
        "What is left is the client CPU each layer spends per statement (best of the interleaved repetitions).",
      "",
      table(
        ["path", "client CPU µs/statement", "statements/s"],
        data.micro.paths.map((p) => [p.label, fixed(p.cpuUsPerOp, 1), int(p.opsPerSec)])
      ),
      ""
    )
  }

  parts.push("## Systems", "")
  parts.push(table(
    ["system", "`--only` key", "routing", "status"],
    data.systems.map((s) => [
      s.name,
      s.key,
      s.routing,
      s.status._tag === "Ran" ? `ran${s.summary ? `; ${s.summary}` : ""}` : `**skipped**: ${s.status.reason}`
    ]),
    "---|---|---|---"
  ))
  parts.push("")
  if (data.notes && data.notes.length > 0) parts.push(...data.notes, "")
  // Measured by hand with bench/connections.ts (not timed): kept across runs.
  const connections = new URL("./connections.md", import.meta.url)
  if (Fs.existsSync(connections)) parts.push(Fs.readFileSync(connections, "utf8").trimEnd(), "")
  return parts.join("\n")
}

const decisionOf = (data: RunData, prefix: string) =>
  data.micro?.decision.find((d) => d.label.startsWith(prefix))?.cpuUsPerOp
const pathOf = (data: RunData, prefix: string) => data.micro?.paths.find((p) => p.label.startsWith(prefix))?.cpuUsPerOp
const cpuOf = (data: RunData, system: string, workload: WorkloadKey) => aggregate(data, system, workload)?.cpuUsPerOp
const us = (n: number | undefined) => n === undefined || !Number.isFinite(n) ? "–" : `${n.toFixed(1)} µs`
const diff = (a: number | undefined, b: number | undefined) => a === undefined || b === undefined ? Number.NaN : a - b

/** What the numbers of this run say, in prose, for the end of the report. */
export const notes = (data: RunData): ReadonlyArray<string> => {
  const out: Array<string> = ["## Where the time goes", ""]
  const b = data.baseline
  if (data.machine.load.start > 0.5 || data.machine.load.end > 1.5) {
    out.push(
      `- **Noise.** The host was not idle (1-minute load ${data.machine.load.start.toFixed(2)} at start, ` +
        `${data.machine.load.end.toFixed(2)} at end, on ${data.machine.cores} cores): absolute qps are depressed and vary; ` +
        "the ratios pair systems measured in the same round and are the figures to read.",
      ""
    )
  }

  const c1 = cellsOf(data, b, "select1-c1").map((cell) => cell.result.qps)
  if (c1.length > 1 && Math.max(...c1) > 1.5 * Math.min(...c1)) {
    out.push(
      `- **Concurrency 1 is bimodal here.** raw pg alone ran between ${int(Math.min(...c1))} and ${int(Math.max(...c1))} ` +
        "qps from round to round at the same client CPU budget: a lone query's round trip depends on whether the client " +
        "and the server backend share a vCPU or wake each other across vCPUs. Read the c=1 ratios with their range.",
      ""
    )
  }

  // Target 1: client CPU per statement.
  const cpu = {
    pg: cpuOf(data, b, "select1-c32"),
    pgclient: cpuOf(data, "pgclient", "select1-c32"),
    withread: cpuOf(data, "withread", "select1-c32"),
    routed: cpuOf(data, "routed", "select1-c32")
  }
  const floor = pathOf(data, "`runPromise` of the fake I/O alone")
  const pick = pathOf(data, "`pickReplica`")
  const stmt = pathOf(data, "@effect/sql statement")
  const withReadPath = pathOf(data, "`SqlRouter.withRead`")
  const provide = pathOf(data, "`Effect.provide`")
  const routedPath = pathOf(data, "RoutedClient statement")
  out.push(
    "**Routing overhead (targets 1 and 2).** `SELECT 1` at c=32 is CPU-bound: client and servers share " +
      `${data.machine.cores} cores, so a row's throughput falls as its client CPU per query rises. Client CPU per query ` +
      `(median over rounds): raw pg ${us(cpu.pg)}, PgClient ${us(cpu.pgclient)}, SqlRouter.withRead ${us(cpu.withread)}, ` +
      `RoutedClient ${us(cpu.routed)}.`,
    ""
  )
  if (data.micro) {
    out.push(
      `- Without the network (statement-path table): a \`runPromise\` round trip costs ${us(floor)}; the @effect/sql ` +
        `statement path adds ${us(diff(stmt, floor))} (span, compile, acquirer, fiber hops): this is the cost PgClient ` +
        `direct pays over raw pg. \`withRead\` adds ${us(diff(withReadPath, stmt))} on top of the statement and the ` +
        `RoutedClient ${us(diff(routedPath, stmt))}. Of these, the pick + release pair adds ${us(diff(pick, floor))} at ` +
        `concurrency 32 (both), and \`withRead\`'s \`Effect.provide\` of the chosen node's SqlClient/PgClient context ` +
        `adds ${us(diff(provide, floor))} (withRead only: the RoutedClient routes below the statement, at the connection, ` +
        "and provides nothing).",
      `- The decision itself: pick + release (round-robin) costs ${us(decisionOf(data, "pick + release, round-robin"))} ` +
        `per statement, run back to back in one fiber, against ${us(decisionOf(data, "reference: pick + release, round-robin, as one STM commit"))} ` +
        `for the same choice as one STM commit and ${us(decisionOf(data, "reference: one trivial STM commit"))} for a ` +
        "trivial commit. Without the network a routed read allocated 18.4 KB with the STM pick and 8.4 KB without it " +
        "(`bench/alloc.ts`; the Effect floor allocates 6.4 KB): the commit's journal, its maps and entries were more " +
        "than half of what the garbage collector had to sweep per read. In the load (32 fibers, `Effect.ensuring` " +
        `around the statement) the pair costs ${us(diff(pick, floor))} (statement-path table).`,
      ""
    )
  }
  const lean = cpuOf(data, "lean", "select1-c32")
  const leanRatio = ratio(data, "lean", "pgclient", "select1-c32")
  if (lean !== undefined) {
    out.push(
      `- The lean per-statement connection on its own (an @effect/sql client over \`Node.connection\`, primary only) ` +
        `costs ${us(lean)} of client CPU per query against PgClient's ${us(cpu.pgclient)} ` +
        `(${fixed(100 * (1 - lean / (cpu.pgclient ?? Number.NaN)), 0)} % less; DESIGN's trial saw 10–15 %), and runs at ` +
        `${times(leanRatio?.median ?? Number.NaN)} PgClient's throughput (rounds ${rangeText(leanRatio)}). Most of ` +
        "PgClient's cost sits in @effect/sql's statement path above the connection, which both share.",
      ""
    )
  }
  const gc = {
    pg: aggregate(data, b, "select1-c32")?.gcUsPerOp,
    pgclient: aggregate(data, "pgclient", "select1-c32")?.gcUsPerOp,
    routed: aggregate(data, "routed", "select1-c32")?.gcUsPerOp
  }
  if (data.micro && stmt !== undefined && floor !== undefined) {
    out.push(
      `- Under real load the Effect rows cost more than the statement-path table shows (PgClient ${us(cpu.pgclient)} ` +
        `against raw pg's ${us(cpu.pg)}: ${us(diff(cpu.pgclient, cpu.pg))} more, while the whole statement path costs ` +
        `${us(stmt)} without network, GC included). GC pause time per query in the load runs: raw pg ${us(gc.pg)}, ` +
        `PgClient ${us(gc.pgclient)}, RoutedClient ${us(gc.routed)}. The rest of the gap does not show in the ` +
        "library's code paths measured without network; it appears only with real sockets, where each answer arrives " +
        "in its own socket event among 32 interleaved fibers and three server processes on two cores.",
      ""
    )
  }
  out.push(
    "- What is left between the RoutedClient and raw pg is mostly Effect's own per-`runPromise` cost (the Effect " +
      "floor row: a fiber, its refs and its scheduling per query) and the garbage it leaves; the router's share " +
      "(compile, cached classification, the synchronous pick, one `Effect.async`, the release in the callback) is " +
      "the difference between the RoutedClient and the floor rows. In long-lived fibers the per-query fiber goes " +
      "away, which is why that harness runs closer to raw pg.",
    ""
  )

  // Target 3: scale-out.
  const sleep = (key: string) => times(ratio(data, key, b, "sleep-c32")?.median ?? Number.NaN)
  out.push(
    "**I/O-bound scale-out (target 3).** With the default `primaryReads: \"fallback\"`, `withRead` and the RoutedClient " +
      "send reads only to replicas; the primary takes reads only when no replica is eligible (DESIGN, routing " +
      "semantics). With P connections per server that is 2P read connections: a ceiling of 2.0× the primary alone with " +
      `P, below the 2.8× target. Measured: RoutedClient ${sleep("routed")}, withRead ${sleep("withread")}. With ` +
      "`primaryReads: \"overflow\"` a read whose replica pool is busy takes a spare primary connection, so reads can " +
      `use all 3P connections (ceiling 3.0×): RoutedClient ${sleep("routed-overflow")}, withRead ` +
      `${sleep("withread-overflow")}. For comparison, with 3P read connections: the hand-written round-robin over all ` +
      `three servers ${sleep("pg-rr")}, pgpool-II ${sleep("pgpool")}, the primary alone with 3P ${sleep("pg-3p")}. ` +
      "Whatever an Effect row loses below its ceiling is client CPU: even on this I/O-bound workload the RoutedClient " +
      `spends ${us(cpuOf(data, "routed", "sleep-c32"))} and withRead ${us(cpuOf(data, "withread", "sleep-c32"))} of ` +
      `client CPU per query (raw pg ${us(cpuOf(data, b, "sleep-c32"))}), on cores the servers also need.`,
    ""
  )
  out.push(
    "**How to look closer.** `node --cpu-prof --cpu-prof-dir /tmp/prof --import tsx bench/run.ts --quick --only routed --no-micro` writes a " +
      "V8 profile of a run; the statement-path and decision tables above isolate the library's share without servers.",
    ""
  )
  return out
}
