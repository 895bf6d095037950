/**
 * The pure half of both lines' benchmark reports: the shape of a run, the
 * statistics over its cells (per-round ratios paired by round, medians), the
 * Markdown formatting, and the sections every report has (header, machine,
 * load per round, method, targets, one table per workload, systems, errors).
 * Each line's `bench/report.ts` adds its own targets, summary and notes.
 * Every ratio is the median of per-round ratios measured in the same round,
 * shown with its min–max over the rounds (`0.62× (0.58–0.66)`); a target is
 * met only when its whole range clears the bar (`Stats.verdict`).
 */
import type { LoadResult } from "./load.js"
import * as Stats from "./stats.js"

export interface Machine {
  readonly cpu: string
  readonly cores: number
  readonly memoryGiB: number
  readonly os: string
  readonly node: string
  readonly postgres: string
  /** 1-minute load average when the run started (before the cluster) and when it ended. */
  readonly load: { readonly start: number; readonly end: number }
  /** Cores in use by anything on the host over 2 s before the run started (undefined where /proc/stat is missing). */
  readonly busyCoresBefore?: number | undefined
  readonly libraries: ReadonlyArray<readonly [name: string, version: string]>
}

export interface Settings {
  readonly mode: string
  /** Whether `--quick` was given. */
  readonly quick: boolean
  readonly rounds: number
  readonly durationMs: number
  readonly warmupMs: number
  /** Unrecorded run of each system on each of its workloads before round 1. */
  readonly systemWarmupMs: number
  /** Whether a full GC ran before every cell. */
  readonly gcBetweenCells?: boolean | undefined
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
  readonly key: string
  readonly title: string
  readonly concurrency: number
  /** The baseline's workload to compare with (fibers workloads: raw pg has no fibers). */
  readonly against?: string | undefined
}

export interface Cell {
  readonly system: string
  readonly workload: string
  readonly round: number
  readonly result: LoadResult
}

/** What every run records; each line's report extends it with its own sections. */
export interface RunData {
  readonly date: Date
  readonly command: string
  /** `git rev-parse --short HEAD`, with "+ uncommitted changes" when the tree was dirty. */
  readonly commit?: string | undefined
  /** Load averages before and after each round of the load cells. */
  readonly roundLoads?: ReadonlyArray<Stats.RoundLoad> | undefined
  readonly elapsedMs: number
  readonly machine: Machine
  readonly settings: Settings
  readonly baseline: string
  readonly systems: ReadonlyArray<SystemInfo>
  readonly workloads: ReadonlyArray<WorkloadInfo>
  readonly cells: ReadonlyArray<Cell>
  readonly notes?: ReadonlyArray<string> | undefined
}

// ---------------------------------------------------------------------------
// Statistics

export const median = Stats.median

export const cellsOf = (data: RunData, system: string, workload: string): ReadonlyArray<Cell> =>
  data.cells.filter((cell) => cell.system === system && cell.workload === workload)

/** qps of `system` on `workload`, by round. */
export const qpsByRound = (data: RunData, system: string, workload: string): Map<number, number> =>
  new Map(cellsOf(data, system, workload).map((cell) => [cell.round, cell.result.qps]))

/** Per-round `qps(a on wa) / qps(b on wb)`, pairing cells of the same round. */
export const pairedRatios = (
  data: RunData,
  a: string,
  wa: string,
  b: string,
  wb: string
): Map<number, number> => {
  const reference = qpsByRound(data, b, wb)
  const out = new Map<number, number>()
  for (const [round, qps] of qpsByRound(data, a, wa)) {
    const base = reference.get(round)
    if (base !== undefined && base > 0) out.set(round, qps / base)
  }
  return out
}

/** The baseline's workload to compare `workload` with (a fibers workload: its promise-style twin). */
const baselineWorkload = (data: RunData, workload: string): string =>
  data.workloads.find((w) => w.key === workload)?.against ?? workload

/**
 * Median, min and max over rounds of `qps(system) / qps(against)` on `workload`,
 * pairing cells of the same round. Against the baseline, a fibers workload is
 * compared with the baseline's promise-style twin (raw pg has no fibers).
 */
export const ratio = (data: RunData, system: string, against: string, workload: string): Stats.Range | undefined =>
  Stats.summarize([
    ...pairedRatios(data, system, workload, against, against === data.baseline ? baselineWorkload(data, workload) : workload)
      .values()
  ])

/** Median, min and max over rounds of one figure of one system's cells on one workload. */
export const metric = (
  data: RunData,
  system: string,
  workload: string,
  pick: (result: LoadResult) => number
): Stats.Range | undefined => Stats.summarize(cellsOf(data, system, workload).map((cell) => pick(cell.result)))

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
export const aggregate = (data: RunData, system: string, workload: string): Aggregate | undefined => {
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

/** Whether `key` ran in this run. */
export const ran = (data: RunData, key: string): boolean =>
  data.systems.find((s) => s.key === key && s.status._tag === "Ran") !== undefined

/** Why `key` has no figures: not selected, or skipped with its reason; undefined when it ran. */
export const whyNot = (data: RunData, key: string): string | undefined => {
  const system = data.systems.find((s) => s.key === key)
  return system === undefined
    ? `${key} was not selected`
    : system.status._tag === "Skipped"
    ? `${system.name} skipped: ${system.status.reason}`
    : undefined
}

export const systemName = (data: RunData, key: string): string => data.systems.find((s) => s.key === key)?.name ?? key

// ---------------------------------------------------------------------------
// Formatting

export const int = (n: number): string => Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "–"
export const fixed = (n: number, digits: number): string => Number.isFinite(n) ? n.toFixed(digits) : "–"
export const ms = (n: number): string =>
  Number.isFinite(n) ? (n < 1 ? n.toFixed(3) : n < 10 ? n.toFixed(2) : n.toFixed(1)) : "–"
/** A ratio with its range over rounds: `0.62× (0.58–0.66)`. */
export const ratioText = (r: Stats.Range | undefined): string => Stats.formatRange(r, 2, "×")
/** Any per-round figure with its range, e.g. `9.9 µs (8.1–11.2)`. */
export const rangeOf = (r: Stats.Range | undefined, digits: number, unit: string): string => Stats.formatRange(r, digits, unit)
export const intRange = (r: Stats.Range | undefined): string =>
  r === undefined ? "–" : r.n < 2 ? `${int(r.median)} (1 round)` : `${int(r.median)} (${int(r.min)}–${int(r.max)})`
export const escapeCell = (text: string): string => text.replace(/\|/g, "\\|").replace(/\n/g, " ")

/** A Markdown table; by default the first column left-aligned and the others right-aligned. */
export const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>, align?: string): string => {
  const lines = [
    `| ${header.join(" | ")} |`,
    `|${align ?? header.map((_, i) => (i === 0 ? "---" : "---:")).join("|")}|`,
    ...rows.map((row) => `| ${row.map(escapeCell).join(" | ")} |`)
  ]
  return lines.join("\n")
}

// ---------------------------------------------------------------------------
// Targets

export interface Target {
  readonly item: string
  readonly target: string
  readonly measured: string
  readonly status: Stats.Verdict
  readonly detail?: string | undefined
}

/**
 * A throughput target over the per-round ratios `range`: at least `bar`; when
 * a system it needs did not run, the detail says why.
 */
export const ratioTarget = (
  data: RunData,
  item: string,
  target: string,
  range: Stats.Range | undefined,
  bar: number,
  systems: ReadonlyArray<string>
): Target => {
  const missing = systems.find((key) => !ran(data, key))
  return {
    item,
    target,
    measured: ratioText(range),
    status: Stats.verdict(range, bar, "atLeast"),
    detail: missing === undefined ? undefined : whyNot(data, missing)
  }
}

/** The summary's last lines: how many targets were met, and every one that was not, with its figure. */
export const verdictLines = (verdicts: ReadonlyArray<Target>): ReadonlyArray<string> => {
  const count = (status: Stats.Verdict) => verdicts.filter((t) => t.status === status).length
  const partial = count("not met: median clears, range does not")
  const lines = [
    `- Targets: ${count("met")} met (whole range clears the bar), ${partial} not met although the median clears, ` +
    `${count("missed")} missed` +
    (count("not measured") > 0 ? `, ${count("not measured")} not measured` : "") +
    (count("not judged: fewer than 5 rounds") > 0
      ? `, ${count("not judged: fewer than 5 rounds")} not judged (fewer than 5 rounds)`
      : "") +
    "."
  ]
  const missed = verdicts.filter((t) => t.status === "missed" || t.status === "not met: median clears, range does not")
  if (missed.length > 0) {
    lines.push("- Not met:", ...missed.map((t) => `  - ${t.target}: ${t.measured} (${t.status})`))
  }
  return lines
}

/** The targets as a table: a verdict other than "met" in bold. */
export const targetsTable = (verdicts: ReadonlyArray<Target>): string =>
  table(
    ["item", "target", "measured: median (min–max)", "verdict"],
    verdicts.map((t) => [
      t.item,
      t.target,
      t.measured + (t.detail ? ` — ${t.detail}` : ""),
      t.status === "met" ? "met" : `**${t.status}**`
    ]),
    "---|---|---|---"
  )

// ---------------------------------------------------------------------------
// Sections

/**
 * The title, how the file was made, and the warnings a reader needs before any
 * figure: a smoke run, too few rounds to judge, a host busy before the run.
 */
export const header = (
  data: RunData,
  options: { readonly title: string; readonly harness: string; readonly rerun: string }
): ReadonlyArray<string> => {
  const { machine, settings } = data
  const parts: Array<string> = [
    options.title,
    "",
    `Generated by \`${data.command}\` on ${data.date.toISOString().replace("T", " ").slice(0, 16)} UTC ` +
    `(${settings.mode} run${settings.quick ? ", quick" : ""}, ${(data.elapsedMs / 60_000).toFixed(1)} min). ` +
    "This file is overwritten by every run and every figure and sentence in it comes from that run; " +
    `the harness lives in ${options.harness} (see \`bench/run.ts\` for the flags).`,
    ""
  ]
  if (settings.mode.startsWith("smoke")) {
    parts.push(
      `**Smoke run** (cells of ${settings.durationMs} ms): it checks that every system runs and that the report is ` +
        `complete. Its figures are not results; ${options.rerun}.`,
      ""
    )
  }
  if (settings.rounds < Stats.minRoundsForVerdict) {
    parts.push(`**${settings.rounds} round${settings.rounds === 1 ? "" : "s"} only: no target is judged.**`, "")
  }
  if (Stats.busyHost(machine.busyCoresBefore, machine.load.start, machine.cores)) {
    parts.push(
      "**The host was busy with other work when this run started** (see the machine table): absolute figures may " +
        "be depressed and the ranges wide. Ratios pair systems measured in the same round.",
      ""
    )
  }
  return parts
}

const loadTriple = (l: readonly [number, number, number]) => l.map((n) => n.toFixed(2)).join(" / ")

/** Load averages around each round, or "" when none were recorded. */
export const loadTable = (data: RunData): string => {
  const loads = data.roundLoads ?? []
  if (loads.length === 0) return ""
  return table(
    ["round", "load before (1 / 5 / 15 min)", "load after (1 / 5 / 15 min)", "duration"],
    loads.map((l) => [
      l.round < 0 ? "system warm-up" : String(l.round + 1),
      loadTriple(l.before),
      loadTriple(l.after),
      `${(l.elapsedMs / 1000).toFixed(0)} s`
    ])
  )
}

/** The machine table (with `extraRows` after PostgreSQL) and the load averages per round. */
export const machineSection = (
  data: RunData,
  extraRows: ReadonlyArray<readonly [string, string]> = []
): ReadonlyArray<string> => {
  const { machine, settings } = data
  const parts: Array<string> = [
    "## Machine",
    "",
    table(["", ""], [
      ["date", `${data.date.toISOString().replace("T", " ").slice(0, 19)} UTC`],
      ["git commit", data.commit ?? "unknown"],
      [
        "run",
        `${settings.mode}${settings.quick ? " (`--quick`)" : ""}: ${settings.rounds} rounds, ` +
        `${settings.warmupMs} + ${settings.durationMs} ms per cell`
      ],
      ["CPU", `${machine.cpu}, ${machine.cores} cores`],
      ["memory", `${machine.memoryGiB.toFixed(0)} GiB`],
      ["OS", machine.os],
      ["Node.js", machine.node],
      [
        "PostgreSQL",
        `${machine.postgres} (embedded binaries), primary + ${settings.replicas} streaming replicas on loopback, same host`
      ],
      ...extraRows,
      [
        "load average (1 min)",
        `${machine.load.start.toFixed(2)} before the cluster started, ${machine.load.end.toFixed(2)} at the end`
      ],
      ...(machine.busyCoresBefore === undefined
        ? []
        : [[
          "cores in use before the run",
          `${machine.busyCoresBefore.toFixed(2)} of ${machine.cores} (over 2 s, from /proc/stat)`
        ] as const]),
      ["libraries", machine.libraries.map(([name, version]) => `${name} ${version}`).join(", ")]
    ], "---|---"),
    ""
  ]
  const loads = loadTable(data)
  if (loads) {
    parts.push(
      "Load averages (`os.loadavg()`) around each round of the load cells. They count the run's own client and " +
        `server threads (client and servers share the ${machine.cores} cores), so they show how hard the run pushed ` +
        "the host, not other work on it.",
      "",
      loads,
      ""
    )
  }
  return parts
}

/** How the figures were made: pools, warm-up, rounds and rotation, verdicts, CPU and GC, runtimes; then the line's `extra` bullets. */
export const methodSection = (data: RunData, extra: ReadonlyArray<string> = []): ReadonlyArray<string> => {
  const { settings } = data
  return [
    "## Method",
    "",
    `- Pool size P = ${settings.poolSize} connections per server for every system (exceptions are named in the system list).`,
    `- Before round 1 each system runs each of its workloads for ${settings.systemWarmupMs} ms, unrecorded (pools fill, ` +
    "the JIT warms up).",
    `- Closed loop: C workers each await one query at a time. Every cell runs ${settings.warmupMs} ms of warm-up, ` +
    `then ${settings.durationMs} ms measured; qps counts queries finished in the window, p50/p99 are over the queries ` +
    "that started and finished in it.",
    `- ${settings.rounds} round${settings.rounds === 1 ? "" : "s"}: each round runs every system once per workload, raw pg ` +
    "included; round r of workload w starts at system (r + w) mod n and goes on in list order, so every system " +
    "takes every position. A ratio is computed per round against raw pg measured in the same round; each cell shows " +
    "the median of those per-round ratios and their min–max. qps and latencies are medians over rounds.",
    `- A target is **met** only when its whole range clears the bar (the worst round, or the worst repetition of a ` +
    "micro-benchmark); when only the median clears it, it is **not met** and says so; otherwise **missed**. " +
    `With fewer than ${Stats.minRoundsForVerdict} rounds nothing is judged.`,
    "- Client CPU is the benchmark process's user + system CPU over the window divided by the queries completed; " +
    "\"GC pause\" is the wall time of the garbage-collection pauses in the same window per query (stretched, like " +
    "everything, when the host is busy). Client and servers share the " +
    "same cores, so client CPU per query bounds every CPU-bound row.",
    settings.gcBetweenCells
      ? "- A full garbage collection runs before every cell, so that no cell pays for the garbage the previous system left."
      : "- No garbage collection is forced between cells (`--expose-gc` could not be switched on).",
    "- Effect systems build their layer once in a `ManagedRuntime`; each query is one `runtime.runPromise` of a statement " +
    "built for that call (the fibers workloads: long-lived fibers in one runtime instead).",
    ...extra.map((bullet) => `- ${bullet}`),
    ""
  ]
}

/**
 * One workload's table: every system that ran it, medians over rounds and the
 * ratio to the baseline with its range; `readConnections` adds that column.
 * "" when no system ran it.
 */
export const workloadTable = (
  data: RunData,
  workload: WorkloadInfo,
  options: { readonly readConnections?: boolean } = {}
): string => {
  const header = [
    "system",
    "qps (median)",
    "p50 ms",
    "p99 ms",
    "client CPU µs/query",
    "GC pause µs/query",
    ...(options.readConnections ? ["read connections"] : []),
    "× raw pg: median (min–max over rounds)"
  ]
  const rows: Array<Array<string>> = []
  for (const system of data.systems) {
    const agg = aggregate(data, system.key, workload.key)
    if (agg === undefined) continue
    rows.push([
      system.name + (agg.errors > 0 ? ` ⚠ ${agg.errors} errors` : ""),
      int(agg.qps),
      ms(agg.p50Ms),
      ms(agg.p99Ms),
      fixed(agg.cpuUsPerOp, 0),
      fixed(agg.gcUsPerOp, 1),
      ...(options.readConnections ? [String(system.readConnections)] : []),
      ratioText(ratio(data, system.key, data.baseline, workload.key))
    ])
  }
  if (rows.length === 0) return ""
  return [`### ${workload.title}`, "", table(header, rows)].join("\n")
}

/** One line per system and workload that had errors, with the first error. */
export const errorsList = (data: RunData): Array<string> => {
  const out: Array<string> = []
  for (const system of data.systems) {
    for (const workload of data.workloads) {
      const agg = aggregate(data, system.key, workload.key)
      if (agg && agg.errors > 0) out.push(`- ${system.name}, ${workload.key}: ${agg.errors} errors, first: ${agg.firstError ?? "?"}`)
    }
  }
  return out
}

/** Every system: its `--only` key, where it routes, and whether it ran (a skipped one with its reason). */
export const systemsSection = (data: RunData): ReadonlyArray<string> => [
  "## Systems",
  "",
  table(
    ["system", "`--only` key", "routing", "status"],
    data.systems.map((s) => [
      s.name,
      s.key,
      s.routing,
      s.status._tag === "Ran" ? `ran${s.summary ? `; ${s.summary}` : ""}` : `**skipped**: ${s.status.reason}`
    ]),
    "---|---|---|---"
  ),
  ""
]

/** Each system against the baseline on every workload: median (min–max) of the per-round ratios. */
export const ratioMatrix = (data: RunData): string =>
  table(
    ["system", ...data.workloads.map((w) => w.key)],
    data.systems.filter((s) => s.key !== data.baseline && s.status._tag === "Ran").map((system) => [
      system.name,
      ...data.workloads.map((w) => ratioText(ratio(data, system.key, data.baseline, w.key)))
    ])
  )
