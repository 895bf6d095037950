/**
 * Turns an Effect 4 run into Markdown: the targets of issue 22 (DESIGN,
 * "Performance, turn 3") with their verdicts, a summary and notes generated
 * from the measured numbers, and the shared sections (machine and load,
 * method, one table per workload, systems) from `packages/core/bench/report.ts`.
 * Every ratio is the median of per-round ratios measured in the same round,
 * with its min–max; a target is met only when its whole range clears the bar.
 * No figure in the report is written by hand.
 */
import type { CdcBenchResult } from "./cdc.js"
import { renderCdc } from "./cdc.js"
import * as Shared from "../../core/bench/report.js"
import * as Stats from "../../core/bench/stats.js"

export interface RunData extends Shared.RunData {
  /** Whether the library ran as the compiled package (dist/) rather than from its TypeScript sources. */
  readonly compiled: boolean
  /** The CDC section (bench/cdc.ts), when it ran. */
  readonly cdc?: CdcBenchResult | undefined
}
export const { aggregate, pairedRatios, qpsByRound, ratio } = Shared
const { cellsOf, int, ratioText, systemName, table } = Shared

/** The workload the targets are judged on. */
const judged = "select1-c32"

/** Our multiplexed routed client against the others, and the same-mode pairs the report compares. */
const pairs: ReadonlyArray<readonly [ours: string, theirs: string]> = [
  ["routed-mx", "pgclient-mx"],
  ["routed-mx-primary", "pgclient-mx"],
  ["routed", "pgclient"]
]

/** Issue 22's targets, judged on the whole range of the per-round ratios. */
export const targets = (data: RunData): ReadonlyArray<Shared.Target> => {
  const b = data.baseline
  const vsPg = (workload: string, bar: number, label: string) =>
    Shared.ratioTarget(
      data,
      "issue 22",
      `RoutedClient with \`multiplex: true\` ≥ ${bar.toFixed(1)}× raw pg Pool, ${label}`,
      ratio(data, "routed-mx", b, workload),
      bar,
      ["routed-mx"]
    )
  const vsPgClient = (ours: string, theirs: string, mode: string) =>
    Shared.ratioTarget(
      data,
      "issue 22",
      `RoutedClient ${mode} ≥ 0.9× @effect/sql-pg 4 PgClient ${mode}, \`SELECT 1\` c=32 (paired by round)`,
      ratio(data, ours, theirs, judged),
      0.9,
      [ours, theirs]
    )
  return [
    vsPg(judged, 2.0, "`SELECT 1` c=32"),
    vsPg("select1-c128", 2.0, "`SELECT 1` c=128"),
    vsPg(judged, 2.5, "`SELECT 1` c=32 (stretch)"),
    vsPg("select1-c8", 1.5, "`SELECT 1` c=8"),
    vsPg("select1-c1", 1.0, "`SELECT 1` c=1 (pipelining cannot help)"),
    vsPgClient("routed-mx", "pgclient-mx", "with `multiplex: true`"),
    vsPgClient("routed", "pgclient", "plain")
  ]
}

/** The summary at the top: every sentence built from this run's numbers. */
export const summary = (data: RunData): ReadonlyArray<string> => {
  const out: Array<string> = []
  const b = data.baseline
  const listed = ["routed-mx", "pgclient-mx", "routed", "pgclient", "routed3", "pgclient3", "kysely", "drizzle", "pgpool"].filter((key) => qpsByRound(data, key, judged).size > 0)
  if (listed.length > 0) {
    out.push(
      `\`SELECT 1\` at concurrency 32, × raw pg, median (min–max) over ${data.settings.rounds} rounds` +
        `${data.settings.quick ? " of a quick run" : ""}: ` +
        listed.map((key) => `${systemName(data, key)} ${ratioText(ratio(data, key, b, judged))}`).join("; ") + "."
    )
  }
  const comparisons = pairs.filter(([ours, theirs]) =>
    qpsByRound(data, ours, judged).size > 0 && qpsByRound(data, theirs, judged).size > 0
  ).map(([ours, theirs]) =>
    Stats.describeComparison(
      Stats.compareRounds(qpsByRound(data, ours, judged), qpsByRound(data, theirs, judged)),
      systemName(data, ours),
      systemName(data, theirs)
    ) + ` (${ratioText(ratio(data, ours, theirs, judged))} of its qps)`
  )
  if (comparisons.length > 0) out.push(`Paired by round at \`SELECT 1\` c=32: ${comparisons.join("; ")}.`)
  const cpu = ["pg", "pgclient", "pgclient-mx", "routed", "routed-mx", "routed-mx-primary"].flatMap((key) => {
    const value = aggregate(data, key, judged)?.cpuUsPerOp
    return value === undefined || !Number.isFinite(value) ? [] : [`${systemName(data, key)} ${value.toFixed(0)} µs`]
  })
  if (cpu.length > 0) out.push(`Client CPU per query at \`SELECT 1\` c=32 (median): ${cpu.join(", ")}.`)
  if (!data.compiled) {
    out.push(
      "The library ran from its TypeScript sources through tsx, not as the compiled package: its figures include " +
        "tsx's per-call costs (DESIGN: bench the compiled JavaScript, as `npm run bench:effect4` does)."
    )
  }
  const missing = data.systems.filter((s) => s.status._tag === "Skipped")
  if (missing.length > 0) {
    out.push(`Not measured in this run: ${missing.map((s) => s.name).join(", ")} (see "Systems" for why).`)
  }
  return [...out.map((line) => `- ${line}`), ...Shared.verdictLines(targets(data))]
}

/** Each of our clients against @effect/sql-pg 4's in the same mode, on every workload. */
const sameModeTable = (data: RunData): string => {
  const rows = pairs.filter(([ours, theirs]) => Shared.ran(data, ours) && Shared.ran(data, theirs)).map((
    [ours, theirs]
  ) => [
    `${systemName(data, ours)} ÷ ${systemName(data, theirs)}`,
    ...data.workloads.map((w) => ratioText(ratio(data, ours, theirs, w.key)))
  ])
  return rows.length === 0 ? "" : table(["pair", ...data.workloads.map((w) => w.key)], rows)
}

export const render = (data: RunData): string => {
  const parts: Array<string> = [
    ...Shared.header(data, {
      title: "# Benchmarks: the Effect 4 line",
      harness: "`packages/effect4/bench/` and, shared with the Effect 3 line, `packages/core/bench/`",
      rerun: "run `npm run bench:effect4` (or `-- --quick`) for those"
    })
  ]
  parts.push("## Summary", "", ...summary(data), "")
  parts.push(...Shared.machineSection(data, [[
    "library code",
    data.compiled
      ? "the compiled package (dist/, `--conditions=effect-sql-router-dist`)"
      : "TypeScript sources through tsx (not the compiled package)"
  ]]))
  parts.push(...Shared.methodSection(data, [
    "Every client has P connections per server: raw pg and @effect/sql-pg's PgClient on the primary alone, the " +
    "RoutedClient on each of the primary and the replicas (it sends reads to the replicas, writes to the primary). " +
    "With `multiplex: true` up to 32 statements share one connection (pipelined)."
  ]))
  parts.push("## Targets (issue 22; DESIGN, \"Performance, turn 3\")", "")
  parts.push(Shared.targetsTable(targets(data)), "")
  parts.push(
    "Every system × raw pg on every workload: median (min–max) of the per-round ratios:",
    "",
    Shared.ratioMatrix(data),
    ""
  )
  const sameMode = sameModeTable(data)
  if (sameMode) {
    parts.push(
      "Our routed client × @effect/sql-pg 4 PgClient in the same mode (plain, or multiplex): median (min–max) of " +
        "the per-round ratios:",
      "",
      sameMode,
      ""
    )
  }
  parts.push("## Results by workload", "")
  for (const workload of data.workloads) {
    const text = Shared.workloadTable(data, workload)
    if (text) parts.push(text, "")
  }
  const errors = Shared.errorsList(data)
  if (errors.length > 0) parts.push("Errors during the run:", "", ...errors, "")
  parts.push(...Shared.systemsSection(data))
  if (data.notes && data.notes.length > 0) parts.push(...data.notes, "")
  if (data.cdc) parts.push(renderCdc(data.cdc), "Catch-up and lag: interleaved rounds, median and range.", "")
  return parts.join("\n")
}

const us = (n: number | undefined) => n === undefined || !Number.isFinite(n) ? "–" : `${n.toFixed(1)} µs`
const cpuOf = (data: RunData, system: string, workload: string) => aggregate(data, system, workload)?.cpuUsPerOp

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
  for (const [ours, theirs] of pairs) {
    const a = cpuOf(data, ours, judged)
    const t = cpuOf(data, theirs, judged)
    if (a === undefined || t === undefined) continue
    // With replicas, the reads of one client spread over two servers: fewer statements share each
    // pipelined write and read, so each costs more than on one server, whatever the routing costs.
    const spread = ours === "routed-mx"
    out.push(
      `- ${systemName(data, ours)} spent ${us(a)} of client CPU per \`SELECT 1\` at c=32 and ` +
        `${systemName(data, theirs)} ${us(t)} (medians): a difference of ${us(a - t)} per query, which is what ` +
        (spread
          ? "routing adds together with spreading the reads over the two replicas: with the same concurrency split " +
            "over two servers, about half as many statements share each pipelined round trip on the client (compare " +
            "the RoutedClient with no replicas for the routing alone)."
          : "routing (classification, the pick, the borrowed connection over the node's client) adds in this run."),
      ""
    )
  }
  const mx1 = ratio(data, "routed-mx", b, "select1-c1")
  const mx32 = ratio(data, "routed-mx", b, judged)
  if (mx1 !== undefined && mx32 !== undefined) {
    out.push(
      `- Pipelining needs concurrency: the multiplexed RoutedClient ran at ${ratioText(mx1)} raw pg at c=1 and ` +
        `${ratioText(mx32)} at c=32.`,
      ""
    )
  }
  const fibers = ratio(data, "routed-mx", b, "select1-c32-fibers")
  if (fibers !== undefined && mx32 !== undefined) {
    out.push(
      `- In long-lived fibers (no \`runPromise\` per query) the multiplexed RoutedClient ran at ${ratioText(fibers)} raw ` +
        `pg, against ${ratioText(mx32)} with one \`runPromise\` per query.`,
      ""
    )
  }
  return out.length > 2 ? out : []
}
