/**
 * Turns a run into Markdown: machine and load, method, a summary generated
 * from the measured numbers, the targets of DESIGN's "Performance targets"
 * with their verdicts, one table per workload, the secondary sections and
 * what was skipped. Every ratio is the median of per-round ratios against raw
 * `pg` measured in the same round, shown with its min–max over the rounds
 * (`0.62 (0.58–0.66)`). A target is met only when its whole range clears the
 * bar (`Stats.verdict`). No figure in the report is written by hand: every
 * number and every comparison in the prose comes from this run. The pure
 * statistics, formatting and common sections are shared with the Effect 4
 * line's benchmark (`packages/core/bench/report.ts`); this module holds the
 * Effect 3 line's targets, summary, secondary sections and notes.
 */
import * as Fs from "node:fs"
import * as Shared from "../../core/bench/report.js"
import * as Stats from "../../core/bench/stats.js"
import type { CdcBenchResult } from "./cdc.js"
import { renderCdc } from "./cdc.js"
import type { EventLogResult } from "./eventLog.js"
import type { LsnResult } from "./lsn.js"
import type { MicroResults } from "./micro.js"
import type { WorkloadKey } from "./systems.js"

export interface Machine extends Shared.Machine {
  readonly pgpool: string | undefined
}

export type Settings = Shared.Settings
export type SystemInfo = Shared.SystemInfo
export type Cell = Shared.Cell
export type Target = Shared.Target
export type Aggregate = Shared.Aggregate

export interface WorkloadInfo extends Shared.WorkloadInfo {
  readonly key: WorkloadKey
  readonly against?: WorkloadKey | undefined
}

export interface RunData extends Shared.RunData {
  readonly machine: Machine
  readonly workloads: ReadonlyArray<WorkloadInfo>
  readonly micro: MicroResults | undefined
  readonly lsn?: LsnResult | undefined
  readonly eventLog?: EventLogResult | undefined
  readonly cdc?: CdcBenchResult | undefined
}

export const { aggregate, median, metric, pairedRatios, qpsByRound, ratio } = Shared
const { cellsOf, fixed, int, intRange, rangeOf, ratioText, systemName, table } = Shared

// ---------------------------------------------------------------------------
// Targets

/** A micro-benchmark figure over its repetitions (best, worst, median), judged on the worst. */
const repetitions = (values: ReadonlyArray<number> | undefined): Stats.Range | undefined =>
  values === undefined ? undefined : Stats.summarize(values)

export const targets = (data: RunData): ReadonlyArray<Target> => {
  const out: Array<Target> = []
  const b = data.baseline
  const ratioTarget = (
    item: string,
    target: string,
    range: Stats.Range | undefined,
    bar: number,
    systems: ReadonlyArray<string>
  ) => {
    out.push(Shared.ratioTarget(data, item, target, range, bar, systems))
  }
  ratioTarget(
    "1",
    "RoutedClient ≥ 1.3× PgClient direct, `SELECT 1` c=32",
    ratio(data, "routed", "pgclient", "select1-c32"),
    1.3,
    ["routed", "pgclient"]
  )
  const vsPg = ratio(data, "routed", b, "select1-c32")
  ratioTarget("1", "RoutedClient ≥ 0.70× raw pg, `SELECT 1` c=32", vsPg, 0.7, ["routed"])
  ratioTarget("1", "RoutedClient ≥ 0.80× raw pg, `SELECT 1` c=32 (stretch)", vsPg, 0.8, ["routed"])
  ratioTarget(
    "1",
    "RoutedClient in long-lived fibers ≥ 0.70× raw pg, `SELECT 1` c=32",
    ratio(data, "routed", b, "select1-c32-fibers"),
    0.7,
    ["routed"]
  )
  ratioTarget(
    "1",
    "`readTimeout` on costs ≤ 5 % (≥ 0.95× RoutedClient without), `SELECT 1` c=32",
    ratio(data, "routed-timeout", "routed", "select1-c32"),
    0.95,
    ["routed-timeout", "routed"]
  )
  ratioTarget(
    "1",
    "`withRead` within 10 % of a routed statement (≥ 0.90× RoutedClient), `SELECT 1` c=32",
    ratio(data, "withread", "routed", "select1-c32"),
    0.9,
    ["withread", "routed"]
  )
  ratioTarget(
    "turn 3",
    "RoutedClient in long-lived fibers level with kysely-replication at `SELECT 1` c=32 (≥ 0.95× its qps, " +
      "paired by round)",
    Stats.summarize([...pairedRatios(data, "routed", "select1-c32-fibers", "kysely", "select1-c32").values()]),
    0.95,
    ["routed", "kysely"]
  )
  const gc = metric(data, "routed", "select1-c32", (r) => r.gcUsPerOp)
  out.push({
    item: "2",
    target: "GC ≤ 8 µs per query (RoutedClient, `SELECT 1` c=32)",
    measured: rangeOf(gc, 1, " µs"),
    status: Stats.verdict(gc, 8, "atMost")
  })
  const decision = data.micro?.decision.find((d) => d.label.startsWith("pick + release, round-robin"))
  const decisionRange = repetitions(decision?.cpuUsPerRep)
  out.push({
    item: "2",
    target: "router decision (synchronous pick + in-flight count, release in the callback) ≤ 2 µs per statement",
    measured: decisionRange ? `${rangeOf(decisionRange, 2, " µs")} CPU over ${decisionRange.n} repetitions` : "–",
    status: Stats.verdict(decisionRange, 2, "atMost")
  })
  for (const key of ["routed", "withread", "routed-overflow", "withread-overflow"]) {
    const name = data.systems.find((s) => s.key === key)?.name ?? key
    ratioTarget(
      "3",
      `${name}: \`pg_sleep(0.005)\` c=32 ≥ 2.8× primary alone (pool P)`,
      ratio(data, key, b, "sleep-c32"),
      2.8,
      [key]
    )
  }
  const cached = data.micro?.classifier.find((c) => c.label.startsWith("cached, the same"))
  const fresh = data.micro?.classifier.find((c) => c.label.startsWith("cached, a fresh"))
  const uncached = data.micro?.classifier.find((c) => c.label.startsWith("uncached"))
  const cachedRange = repetitions(cached?.opsPerSecPerRep)
  const freshRange = repetitions(fresh?.opsPerSecPerRep)
  const uncachedRange = repetitions(uncached?.opsPerSecPerRep)
  out.push({
    item: "5",
    target: "classifier ≥ 1M cached classifications/s (fresh strings per call judged)",
    measured: freshRange
      ? `fresh strings ${intRange(freshRange)}/s; the same strings ${intRange(cachedRange)}/s`
      : "–",
    status: Stats.verdict(freshRange, 1_000_000, "atLeast")
  })
  out.push({
    item: "5",
    target: "classifier ≥ 100k uncached classifications/s",
    measured: uncachedRange ? `${intRange(uncachedRange)}/s` : "–",
    status: Stats.verdict(uncachedRange, 100_000, "atLeast")
  })
  return out
}

// ---------------------------------------------------------------------------
// Rendering

/** The summary at the top: every sentence built from this run's numbers. */
export const summary = (data: RunData): ReadonlyArray<string> => {
  const out: Array<string> = []
  const b = data.baseline
  const { settings } = data
  const w: WorkloadKey = "select1-c32"
  const listed = ["routed", "withread", "kysely", "drizzle", "floor", "pgclient", "pg-rr"].filter((key) =>
    qpsByRound(data, key, w).size > 0
  )
  if (listed.length > 0) {
    out.push(
      `\`SELECT 1\` at concurrency 32, × raw pg, median (min–max) over ${settings.rounds} rounds` +
        `${settings.quick ? " of a quick run" : ""}: ` +
        listed.map((key) => `${systemName(data, key)} ${ratioText(ratio(data, key, b, w))}`).join("; ") + "."
    )
  }
  const comparisons: Array<string> = []
  for (const other of ["kysely", "drizzle", "pgclient", "floor"]) {
    if (qpsByRound(data, "routed", w).size === 0 || qpsByRound(data, other, w).size === 0) continue
    comparisons.push(
      Stats.describeComparison(
        Stats.compareRounds(qpsByRound(data, "routed", w), qpsByRound(data, other, w)),
        "the RoutedClient",
        systemName(data, other)
      )
    )
  }
  if (comparisons.length > 0) out.push(`Paired by round at the same workload: ${comparisons.join("; ")}.`)
  const fibers = ratio(data, "routed", b, "select1-c32-fibers")
  const kysely = ratio(data, "kysely", b, w)
  if (fibers !== undefined) {
    out.push(
      `In 32 long-lived fibers (no \`runPromise\` per query) the RoutedClient ran at ${ratioText(fibers)} raw pg` +
        (kysely === undefined
          ? "."
          : `; ${
            Stats.describeComparison(
              Stats.compareRounds(
                pairedRatios(data, "routed", "select1-c32-fibers", b, w),
                pairedRatios(data, "kysely", w, b, w)
              ),
              "in fibers it",
              "kysely-replication"
            )
          }.`)
    )
  }
  return [...out.map((line) => `- ${line}`), ...Shared.verdictLines(targets(data))]
}

export const render = (data: RunData): string => {
  const { machine, settings } = data
  const parts: Array<string> = [
    ...Shared.header(data, {
      title: "# Benchmarks",
      harness: "`bench/`",
      rerun: "run `npm run bench` (or `-- --quick`) for those"
    })
  ]
  parts.push("## Summary", "", ...summary(data), "")
  parts.push(...Shared.machineSection(data, [["pgpool-II", machine.pgpool ?? "not installed"]]))
  parts.push(...Shared.methodSection(data))
  parts.push("## Targets (DESIGN, \"Performance targets\")", "")
  parts.push(Shared.targetsTable(targets(data)))
  parts.push(
    "",
    "Item 4 (peers on the same workloads), × raw pg: median (min–max) of the per-round ratios:",
    "",
    Shared.ratioMatrix(data),
    ""
  )

  parts.push("## Results by workload", "")
  for (const workload of data.workloads) {
    const text = Shared.workloadTable(data, workload, { readConnections: workload.key === "sleep-c32" })
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
  const errors = Shared.errorsList(data)
  if (errors.length > 0) parts.push("Errors during the run:", "", ...errors, "")

  if (data.lsn) {
    const l = data.lsn
    parts.push(
      "## Read-your-writes: LSN capture",
      "",
      "A write transaction (`UPDATE` of one row in `SqlRouter.transaction`, concurrency 1, primary pool of 2) with and " +
        "without a causal session. In a session the router reads `pg_current_wal_insert_lsn()` on the same connection " +
        `after COMMIT. ${l.rounds} interleaved rounds, ${l.transactions} transactions of each kind; median (min–max) over the rounds.`,
      "",
      "| transaction | µs per transaction |",
      "|---|---:|",
      `| without a session | ${rangeOf(Stats.summarize(l.plainPerRound), 0, "")} |`,
      `| in a causal session (LSN captured) | ${rangeOf(Stats.summarize(l.sessionPerRound), 0, "")} |`,
      `| added by the capture (paired by round) | ${rangeOf(Stats.summarize(l.addedPerRound), 0, "")} ` +
        `(${((l.addedUs / l.plainUs) * 100).toFixed(0)} % of the median) |`,
      ""
    )
  }

  if (data.eventLog) {
    const e = data.eventLog
    const r = (values: ReadonlyArray<number>) => intRange(Stats.summarize(values))
    parts.push(
      "## Event log",
      "",
      "`EventLog` on the router (primary + " + e.replicas + " replicas, pool P per server). An append is one primary " +
        "transaction: read the system version, `appendEvent` at it; the 16 appenders race on the same versions and decide " +
        "again on `VersionMismatch` (only successful appends count). Reads: `readOnly` pages of 100 events at random " +
        `versions (concurrency 8, replicas), and one \`EventLog.stream\` (pages of 1000) over a ${e.readLogSize}-event log. ` +
        `Median (min–max) of ${e.rounds} interleaved rounds.`,
      "",
      "| workload | per second |",
      "|---|---:|",
      `| appends, 1 appender | ${r(e.perRound.appends1)} |`,
      `| appends, 16 appenders (${e.conflictsPerAppend16.toFixed(2)} VersionMismatch per append, median) | ${r(e.perRound.appends16)} |`,
      `| events read, \`readOnly\` pages of 100, c=8 | ${r(e.perRound.pageEvents)} |`,
      `| events read, \`stream\` (pageSize 1000) | ${r(e.perRound.streamEvents)} |`,
      ""
    )
  }

  if (data.cdc) parts.push(renderCdc(data.cdc), "Catch-up and lag: interleaved rounds, median and range.", "")

  if (data.micro) {
    parts.push(
      "## Micro-benchmarks",
      "",
      "Router decision: a router built on the cluster (`makeState`, health probes off, 2 replicas); one iteration " +
        "is `pickReplica` (the read path's pick: the strategy reads the health TRefs and writes the cursor and " +
        "in-flight count in one synchronous step, no STM commit) then the release as the driver's callback does it, " +
        "in one fiber; the reference row makes the same choice as one STM commit (`Selection.acquire`). All steps " +
        "run interleaved, repetition after repetition; the wall figure is the best repetition, the CPU figure the " +
        "median (min–max) over the repetitions (other work on the host stretches wall time, hardly CPU time).",
      "",
      table(
        ["step", "wall µs per op (best)", "CPU µs per op: median (min–max)", "iterations"],
        data.micro.decision.map((d) => [
          d.label,
          fixed(d.usPerOp, 3),
          rangeOf(Stats.summarize(d.cpuUsPerRep), 3, ""),
          int(d.iterations)
        ])
      ),
      "",
      `Classifier: \`Classifier.make()\` over a corpus of ${data.micro.corpusSize} statements ` +
        `(${data.micro.corpusReads} reads, ${data.micro.corpusSize - data.micro.corpusReads} writes; comments, literals, ` +
        "CTEs, locking clauses, side-effecting functions), interleaved repetitions.",
      "",
      table(
        ["mode", "classifications/s (wall): median (min–max)", "per CPU-second (best)", "iterations"],
        data.micro.classifier.map((c) => [
          c.label,
          intRange(Stats.summarize(c.opsPerSecPerRep)),
          int(c.opsPerCpuSec),
          int(c.iterations)
        ])
      ),
      "",
      "Statement paths without the network: every connection replaced by a fake one whose answer arrives on a later " +
        "event-loop turn (`setImmediate`), 32 concurrent callers, one `runPromise` per statement as in the load runs. " +
        "What is left is the client CPU each layer spends per statement (best of the interleaved repetitions).",
      "",
      table(
        ["path", "client CPU µs/statement (best)", "statements/s (best)"],
        data.micro.paths.map((p) => [p.label, fixed(p.cpuUsPerOp, 1), int(p.opsPerSec)])
      ),
      ""
    )
  }

  parts.push(...Shared.systemsSection(data))
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
const pct = (n: number) => Number.isFinite(n) ? `${n.toFixed(0)} %` : "–"

/** What the numbers of this run say, in prose, for the end of the report: every figure and comparison is computed. */
export const notes = (data: RunData): ReadonlyArray<string> => {
  const out: Array<string> = ["## Where the time goes", ""]
  const b = data.baseline

  const c1 = cellsOf(data, b, "select1-c1").map((cell) => cell.result.qps)
  if (c1.length > 1 && Math.max(...c1) > 1.5 * Math.min(...c1)) {
    out.push(
      `- **Concurrency 1 varied widely.** raw pg alone ran between ${int(Math.min(...c1))} and ${int(Math.max(...c1))} ` +
        "qps from round to round (a lone query's round trip is sensitive to where the client and the server backend " +
        "are scheduled on the shared cores). Read the c=1 ratios with their range.",
      ""
    )
  }

  // Target 1: client CPU per statement.
  const cpu = {
    pg: cpuOf(data, b, "select1-c32"),
    floor: cpuOf(data, "floor", "select1-c32"),
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
      `(median over rounds): raw pg ${us(cpu.pg)}, Effect floor ${us(cpu.floor)}, PgClient ${us(cpu.pgclient)}, ` +
      `SqlRouter.withRead ${us(cpu.withread)}, RoutedClient ${us(cpu.routed)}.`,
    ""
  )
  const routedR = ratio(data, "routed", b, "select1-c32")
  const floorR = ratio(data, "floor", b, "select1-c32")
  if (routedR !== undefined && floorR !== undefined) {
    const floorGap = 1 - floorR.median
    const routerGap = floorR.median - routedR.median
    const vsFloor = Stats.describeComparison(
      Stats.compareRounds(qpsByRound(data, "floor", "select1-c32"), qpsByRound(data, "routed", "select1-c32")),
      "the Effect floor",
      "the RoutedClient"
    )
    out.push(
      `- Of the RoutedClient's distance to raw pg (median ${ratioText(routedR)}), the Effect floor (one ` +
        `\`runPromise(Effect.async(pool.query))\` per query, ${ratioText(floorR)}) accounts for ${fixed(floorGap, 2)} and ` +
        `the router's own path (compile, cached classification, the synchronous pick, the release) for ` +
        `${fixed(routerGap, 2)} of raw pg's throughput; in client CPU the router's path adds ` +
        `${us(diff(cpu.routed, cpu.floor))} per query over the floor. In this run the larger share is ` +
        `${floorGap >= routerGap ? "Effect's per-`runPromise` cost (the floor)" : "the router's own path"}. ` +
        `Paired by round: ${vsFloor}.`,
      ""
    )
  }
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
        `per statement (best repetition), run back to back in one fiber, against ` +
        `${us(decisionOf(data, "reference: pick + release, round-robin, as one STM commit"))} for the same choice as one ` +
        `STM commit and ${us(decisionOf(data, "reference: one trivial STM commit"))} for a trivial commit. ` +
        "`npx tsx bench/alloc.ts` measures the bytes allocated per routed read (not part of this run).",
      ""
    )
  }
  const lean = cpuOf(data, "lean", "select1-c32")
  const leanRatio = ratio(data, "lean", "pgclient", "select1-c32")
  if (lean !== undefined && cpu.pgclient !== undefined) {
    out.push(
      `- The lean per-statement connection on its own (an @effect/sql client over \`Node.connection\`, primary only) ` +
        `costs ${us(lean)} of client CPU per query against PgClient's ${us(cpu.pgclient)} ` +
        `(${pct(100 * (1 - lean / cpu.pgclient))} less), and runs at ${ratioText(leanRatio)} PgClient's throughput.`,
      ""
    )
  }
  const gc = {
    pg: aggregate(data, b, "select1-c32")?.gcUsPerOp,
    floor: aggregate(data, "floor", "select1-c32")?.gcUsPerOp,
    pgclient: aggregate(data, "pgclient", "select1-c32")?.gcUsPerOp,
    routed: aggregate(data, "routed", "select1-c32")?.gcUsPerOp
  }
  if (data.micro && stmt !== undefined && cpu.pgclient !== undefined && cpu.pg !== undefined) {
    out.push(
      `- Under real load PgClient costs ${us(diff(cpu.pgclient, cpu.pg))} more client CPU per query than raw pg, while ` +
        `its whole statement path costs ${us(stmt)} without the network. GC pause time per query in the load runs ` +
        `(median): raw pg ${us(gc.pg)}, Effect floor ${us(gc.floor)}, PgClient ${us(gc.pgclient)}, RoutedClient ${us(gc.routed)}.`,
      ""
    )
  }
  const fibers = ratio(data, "routed", b, "select1-c32-fibers")
  if (fibers !== undefined && routedR !== undefined) {
    out.push(
      `- In long-lived fibers (no fiber and no \`runPromise\` per query) the RoutedClient ran at ${ratioText(fibers)} ` +
        `raw pg, against ${ratioText(routedR)} with one \`runPromise\` per query; ` +
        Stats.describeComparison(
          Stats.compareRounds(
            pairedRatios(data, "routed", "select1-c32-fibers", b, "select1-c32"),
            pairedRatios(data, "routed", "select1-c32", b, "select1-c32")
          ),
          "the fibers harness",
          "the `runPromise` harness"
        ) + ".",
      ""
    )
  }

  // Target 3: scale-out.
  const sleep = (key: string) => ratioText(ratio(data, key, b, "sleep-c32"))
  out.push(
    "**I/O-bound scale-out (target 3).** With the default `primaryReads: \"fallback\"`, `withRead` and the RoutedClient " +
      "send reads only to replicas; the primary takes reads only when no replica is eligible (DESIGN, routing " +
      "semantics). With P connections per server that is 2P read connections: a ceiling of 2.0× the primary alone with " +
      `P, below the 2.8× target. Measured: RoutedClient ${sleep("routed")}, withRead ${sleep("withread")}. With ` +
      "`primaryReads: \"overflow\"` a read whose replica pool is busy takes a spare primary connection, so reads can " +
      `use all 3P connections (ceiling 3.0×): RoutedClient ${sleep("routed-overflow")}, withRead ` +
      `${sleep("withread-overflow")}. For comparison, with 3P read connections: the hand-written round-robin over all ` +
      `three servers ${sleep("pg-rr")}, pgpool-II ${sleep("pgpool")}, the primary alone with 3P ${sleep("pg-3p")}. ` +
      "Client CPU per query on this workload (median): RoutedClient " +
      `${us(cpuOf(data, "routed", "sleep-c32"))}, withRead ${us(cpuOf(data, "withread", "sleep-c32"))}, raw pg ` +
      `${us(cpuOf(data, b, "sleep-c32"))}, on cores the servers also need.`,
    ""
  )
  out.push(
    "**How to look closer.** `node --cpu-prof --cpu-prof-dir /tmp/prof --import tsx bench/run.ts --quick --only routed --no-micro` writes a " +
      "V8 profile of a run" +
      (data.micro ? "; the statement-path and decision tables above isolate the library's share without servers." : "."),
    ""
  )
  return out
}
