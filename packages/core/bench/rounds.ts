/**
 * The method both lines' benchmarks share: the command line's common flags,
 * the modes (full, `--quick`, `--smoke`: every one 5 rounds, only the cells
 * shorten), and the rounds themselves: every system once per workload per
 * round, in the order `Stats.rotate` gives (round r of workload w starts at
 * system (r + w) mod n), the baseline in every round, a full GC before every
 * cell, the load average recorded around every round.
 */
import { performance } from "node:perf_hooks"
import { collect, loadavg } from "./host.js"
import type { LoadOptions, LoadResult } from "./load.js"
import type { Cell } from "./report.js"
import * as Stats from "./stats.js"

export interface Args {
  readonly quick: boolean
  readonly smoke: boolean
  readonly out: string
  readonly only: ReadonlyArray<string> | undefined
  readonly rounds: number | undefined
  readonly durationMs: number | undefined
  readonly warmupMs: number | undefined
  readonly systemWarmupMs: number | undefined
  /** The line's own switches (e.g. `--no-micro`) that were given. */
  readonly switches: ReadonlySet<string>
}

const positive = (flag: string, text: string): number => {
  const n = Number(text)
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${flag} needs a positive integer, got "${text}"`)
  return n
}

const nonNegative = (flag: string, text: string): number => {
  const n = Number(text)
  if (!Number.isInteger(n) || n < 0) throw new Error(`${flag} needs a non-negative integer, got "${text}"`)
  return n
}

/**
 * The common flags (`--quick`, `--smoke`, `--out <file>`, `--only <k1,k2>`,
 * `--rounds <n>`, `--duration <ms>`, `--warmup <ms>`, `--system-warmup <ms>`)
 * and the line's own value-less `switches`; any other flag throws.
 */
export const parseArgs = (
  argv: ReadonlyArray<string>,
  options: { readonly defaultOut: string; readonly switches?: ReadonlyArray<string> | undefined }
): Args => {
  let quick = false
  let smoke = false
  let out = options.defaultOut
  let only: Array<string> | undefined
  let rounds: number | undefined
  let durationMs: number | undefined
  let warmupMs: number | undefined
  let systemWarmupMs: number | undefined
  const switches = new Set<string>()
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    const value = () => {
      const v = argv[++i]
      if (v === undefined) throw new Error(`${arg} needs a value`)
      return v
    }
    if (arg === "--quick") quick = true
    else if (arg === "--smoke") smoke = true
    else if (arg === "--out") out = value()
    else if (arg === "--only") only = value().split(",").map((s) => s.trim()).filter(Boolean)
    else if (arg === "--rounds") rounds = positive(arg, value())
    else if (arg === "--duration") durationMs = positive(arg, value())
    else if (arg === "--warmup") warmupMs = nonNegative(arg, value())
    else if (arg === "--system-warmup") systemWarmupMs = nonNegative(arg, value())
    else if (options.switches?.includes(arg)) switches.add(arg)
    else throw new Error(`unknown flag ${arg} (see bench/run.ts)`)
  }
  return { quick, smoke, out, only, rounds, durationMs, warmupMs, systemWarmupMs, switches }
}

export interface Plan {
  readonly rounds: number
  readonly durationMs: number
  readonly warmupMs: number
  /** Unrecorded run of each system on each of its workloads before round 1 (0: none). */
  readonly systemWarmupMs: number
}

/** The mode's defaults, overridden by the flags. Every mode runs 5 rounds unless `--rounds` says otherwise. */
export const planOf = (
  args: Pick<Args, "smoke" | "quick" | "rounds" | "durationMs" | "warmupMs" | "systemWarmupMs">
): Plan & { readonly mode: string } => {
  const base = args.smoke
    ? { mode: "smoke", rounds: 5, durationMs: 200, warmupMs: 50, systemWarmupMs: 50 }
    : args.quick
    ? { mode: "quick", rounds: 5, durationMs: 1000, warmupMs: 250, systemWarmupMs: 250 }
    : { mode: "full", rounds: 5, durationMs: 3000, warmupMs: 500, systemWarmupMs: 500 }
  const custom = args.rounds !== undefined || args.durationMs !== undefined || args.warmupMs !== undefined ||
    args.systemWarmupMs !== undefined
  return {
    mode: custom ? `${base.mode}, custom` : base.mode,
    rounds: args.rounds ?? base.rounds,
    durationMs: args.durationMs ?? base.durationMs,
    warmupMs: args.warmupMs ?? base.warmupMs,
    systemWarmupMs: args.systemWarmupMs ?? base.systemWarmupMs
  }
}

/** How the rounds reach a line's systems and workloads. */
export interface Runner<I, W extends { readonly key: string; readonly concurrency: number }> {
  /** The system's `--only` key, as cells record it. */
  readonly keyOf: (instance: I) => string
  /** Whether `instance` runs `workload`. */
  readonly runs: (instance: I, workload: W) => boolean
  /** One cell: `workload` on `instance` with these options. */
  readonly measure: (instance: I, workload: W, options: LoadOptions) => Promise<LoadResult>
}

export interface Rounds {
  readonly cells: Array<Cell>
  /** One entry per round (and round -1 for the system warm-up), with the load averages around it. */
  readonly loads: Array<Stats.RoundLoad>
}

/**
 * Runs every instance on every workload it runs, round after round, and
 * returns the cells and the load averages around each round. First, unless
 * `systemWarmupMs` is 0, each instance runs each of its workloads once,
 * unrecorded. The order rotates with the round and the workload
 * (`Stats.rotate`), so that no system always runs first, last, or right
 * after the same neighbour; the baseline runs in every round.
 */
export const runRounds = async <I, W extends { readonly key: string; readonly concurrency: number }>(
  instances: ReadonlyArray<I>,
  workloads: ReadonlyArray<W>,
  plan: Plan,
  runner: Runner<I, W>,
  onCell: (cell: Cell, instance: I) => void = () => {},
  signal?: AbortSignal,
  onRound: (load: Stats.RoundLoad) => void = () => {}
): Promise<Rounds> => {
  const cells: Array<Cell> = []
  const loads: Array<Stats.RoundLoad> = []
  const round = async (index: number, body: () => Promise<void>) => {
    const before = loadavg()
    const started = performance.now()
    await body()
    const load = { round: index, before, after: loadavg(), elapsedMs: performance.now() - started }
    loads.push(load)
    onRound(load)
  }
  if (plan.systemWarmupMs > 0) {
    await round(-1, async () => {
      for (const instance of instances) {
        for (const workload of workloads) {
          if (signal?.aborted || !runner.runs(instance, workload)) continue
          await runner.measure(instance, workload, {
            concurrency: workload.concurrency,
            durationMs: plan.systemWarmupMs,
            warmupMs: 0,
            signal
          })
        }
      }
    })
  }
  for (let r = 0; r < plan.rounds; r++) {
    if (signal?.aborted) break
    await round(r, async () => {
      for (const [w, workload] of workloads.entries()) {
        const eligible = instances.filter((instance) => runner.runs(instance, workload))
        for (const instance of Stats.rotate(eligible, r, w)) {
          if (signal?.aborted) return
          collect()?.()
          const options = { concurrency: workload.concurrency, durationMs: plan.durationMs, warmupMs: plan.warmupMs, signal }
          const result = await runner.measure(instance, workload, options)
          const cell = { system: runner.keyOf(instance), workload: workload.key, round: r, result }
          cells.push(cell)
          onCell(cell, instance)
        }
      }
    })
  }
  return { cells, loads }
}
