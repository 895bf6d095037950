/**
 * The benchmark harness: `npm run bench -- [flags]`.
 *
 *   (no flags)         full run: 5 rounds, 0.5 s warm-up + 3 s measured per cell, 0.5 s system
 *                      warm-up; about 25 minutes on 2 cores with every system (72 cells a round)
 *   --quick            5 rounds too, 0.25 + 1 s per cell, 0.25 s system warm-up: about 9 minutes
 *   --smoke            checks that everything runs, no figures worth keeping: 5 rounds of
 *                      0.05 + 0.2 s cells, no secondary sections, no micro-benchmarks (2-3 minutes)
 *   --out <file>       where the Markdown goes (default BENCHMARKS.md)
 *   --only <k1,k2>     systems to run, by key (raw pg, `pg`, always runs: it is the baseline)
 *   --rounds <n>       override the number of rounds (below 5 no target is judged)
 *   --duration <ms>    override the measured window per cell
 *   --warmup <ms>      override the warm-up per cell
 *   --system-warmup <ms>  override the unrecorded warm-up per system and workload before round 1
 *   --no-micro         skip the micro-benchmarks
 *   --no-secondary     skip the LSN, event-log and CDC sections
 *
 * Every mode runs at least 5 rounds: a quick run shortens the cells, not the
 * rounds, so that its medians and ranges are comparable with a full run's.
 * Round r of workload w starts at system (r + w) mod n (`Stats.rotation`), raw
 * pg included in every round, so every ratio is paired within a round. The
 * load average is recorded before and after every round.
 *
 * Everything runs inside one Scope: the cluster, pgpool and every pool are
 * closed when it ends, also on failure or Ctrl-C.
 *
 * pgpool-II is used when its binary is installed (`apt-get install pgpool2`
 * on Debian/Ubuntu) and reported as skipped otherwise; the harness never
 * installs anything.
 */
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { performance } from "node:perf_hooks"
import * as Host from "../../core/bench/host.js"
import { runMain } from "./main.js"
import * as Rounds from "../../core/bench/rounds.js"
import * as Stats from "../../core/bench/stats.js"
import * as BenchCluster from "./cluster.js"
import * as CdcBench from "./cdc.js"
import * as EventLogBench from "./eventLog.js"
import * as Load from "./load.js"
import * as Lsn from "./lsn.js"
import * as Micro from "./micro.js"
import * as Pgpool from "./pgpool.js"
import * as Report from "./report.js"
import * as Systems from "./systems.js"

export interface Args {
  readonly quick: boolean
  readonly out: string
  readonly only: ReadonlyArray<string> | undefined
  readonly rounds: number | undefined
  readonly durationMs: number | undefined
  readonly warmupMs: number | undefined
  readonly systemWarmupMs: number | undefined
  readonly micro: boolean
  readonly secondary: boolean
  readonly smoke: boolean
}

/** The shared flags (`Rounds.parseArgs`) and this line's `--no-micro` and `--no-secondary`; `--smoke` implies both. */
export const parseArgs = (argv: ReadonlyArray<string>): Args => {
  const { switches, ...args } = Rounds.parseArgs(argv, {
    defaultOut: "BENCHMARKS.md",
    switches: ["--no-micro", "--no-secondary"]
  })
  return {
    ...args,
    micro: !args.smoke && !switches.has("--no-micro"),
    secondary: !args.smoke && !switches.has("--no-secondary")
  }
}

export type Plan = Rounds.Plan

/** The mode's defaults, overridden by the flags. Every mode runs 5 rounds unless `--rounds` says otherwise. */
export const planOf = Rounds.planOf

const t0 = performance.now()
const log = (message: string) => process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(4)}s] ${message}\n`)

/** The machine section of the report. */
export const describeMachine = (options: {
  readonly postgres: string
  readonly pgpool: string | undefined
  readonly loadStart: number
  readonly busyCoresBefore?: number | undefined
}): Report.Machine => ({
  ...Host.describeMachine({
    postgres: options.postgres,
    loadStart: options.loadStart,
    busyCoresBefore: options.busyCoresBefore,
    libraries: Host.libraryVersions(import.meta.url, [
      "effect",
      "@effect/sql",
      "@effect/sql-pg",
      "pg",
      "drizzle-orm",
      "kysely",
      "kysely-replication"
    ])
  }),
  pgpool: options.pgpool
})

type Ready = { readonly system: Systems.System; readonly instance: Systems.Instance }

const measure = (instance: Systems.Instance, workload: Systems.Workload, options: Load.LoadOptions) =>
  workload.fibers !== undefined && instance.effects !== undefined
    ? Load.runFibers(instance.effects.runPromise, workload.fibers.operation(instance.effects), options)
    : Load.run(workload.operation(instance), options)

/**
 * Runs every ready system on every workload, round after round
 * (`Rounds.runRounds`: rotated order, raw pg in every round), and returns the
 * cells and the load averages around each round.
 */
export const runRounds = (
  instances: ReadonlyArray<Ready>,
  workloads: ReadonlyArray<Systems.Workload>,
  plan: Plan,
  onCell: (cell: Report.Cell, system: Systems.System) => void = () => {},
  signal?: AbortSignal,
  onRound: (load: Stats.RoundLoad) => void = () => {}
): Promise<Rounds.Rounds> =>
  Rounds.runRounds(
    instances,
    workloads,
    plan,
    {
      keyOf: ({ system }) => system.key,
      runs: ({ instance, system }, workload) => Systems.runs(system, instance, workload),
      measure: ({ instance }, workload, options) => measure(instance, workload, options)
    },
    (cell, { system }) => onCell(cell, system),
    signal,
    onRound
  )

/** `git rev-parse --short HEAD`, marked when the tree has uncommitted changes; undefined outside a checkout. */
export const gitCommit = Host.gitCommit

const main = (args: Args) =>
  Effect.gen(function*() {
    const started = new Date()
    const loadStart = Os.loadavg()[0] ?? 0
    const busyCoresBefore = yield* Effect.promise(() => Host.sampleBusyCores(2000))
    const commit = gitCommit()
    const plan = planOf(args)
    if (plan.rounds < Stats.minRoundsForVerdict) {
      log(`${plan.rounds} round(s): fewer than ${Stats.minRoundsForVerdict}, so no target will be judged`)
    }
    const wanted = (key: string) => key === Systems.baselineKey || args.only === undefined || args.only.includes(key)
    const selected = Systems.all.filter((s) => wanted(s.key))
    for (const key of args.only ?? []) {
      if (!Systems.all.some((s) => s.key === key)) {
        return yield* Effect.fail(new Error(`unknown system "${key}"; known: ${Systems.all.map((s) => s.key).join(", ")}`))
      }
    }

    log("starting the cluster (primary + 2 streaming replicas)")
    const bench = yield* BenchCluster.make({ replicas: 2 })
    log(`PostgreSQL ${bench.serverVersion} up: primary :${bench.primary.port}, replicas ${bench.replicas.map((r) => `:${r.port}`).join(" ")}`)

    let pgpoolVersion: string | undefined
    let pgpoolState: Systems.SetupContext["pgpool"]
    const binary = Pgpool.findBinary()
    if (binary === undefined) {
      pgpoolState = { _tag: "Missing", reason: `pgpool binary not found on PATH or in /usr/sbin; install it with ${Pgpool.installHint}` }
      log(`pgpool-II not found: it will be reported as skipped. To include it: ${Pgpool.installHint}`)
    } else if (!wanted("pgpool")) {
      pgpoolState = { _tag: "Missing", reason: "not selected" }
    } else {
      pgpoolState = yield* Pgpool.start(binary, bench, { children: 3 * bench.poolSize + 8 }).pipe(
        Effect.map((pgpool) => {
          pgpoolVersion = pgpool.version
          log(`pgpool-II ${pgpool.version} up on :${pgpool.port}`)
          return { _tag: "Running", pgpool } as const
        }),
        Effect.catchAll((error) => {
          log(`pgpool-II did not start: ${error.message}`)
          return Effect.succeed({ _tag: "Missing", reason: `failed to start: ${error.message.split("\n")[0]}` } as const)
        })
      )
    }

    const context: Systems.SetupContext = { bench, pgpool: pgpoolState }
    const infos = new Map<string, Report.SystemInfo>()
    const instances: Array<{ system: Systems.System; instance: Systems.Instance }> = []
    for (const system of selected) {
      const base = { key: system.key, name: system.name, routing: system.routing, readConnections: system.readConnections(bench.poolSize) }
      const setup = yield* Effect.acquireRelease(
        Effect.promise(() =>
          system.setup(context).then(async (setup): Promise<Systems.Setup> => {
            if (setup._tag === "Skipped") return setup
            // One call of each statement: a system that cannot run is reported, not benchmarked.
            try {
              await setup.instance.select1()
              await setup.instance.sleep()
              await setup.instance.read(1)
              await setup.instance.write(1)
              return setup
            } catch (error) {
              await setup.instance.close().catch(() => {})
              return { _tag: "Skipped", reason: `its first queries failed: ${String((error as Error)?.message ?? error)}` }
            }
          }, (error): Systems.Setup => ({ _tag: "Skipped", reason: `setup failed: ${String((error as Error)?.message ?? error)}` }))
        ),
        (setup) => setup._tag === "Ready" ? Effect.promise(() => setup.instance.close().catch(() => {})) : Effect.void
      )
      if (setup._tag === "Ready") {
        instances.push({ system, instance: setup.instance })
        infos.set(system.key, { ...base, status: { _tag: "Ran" } })
      } else {
        log(`${system.name}: skipped (${setup.reason})`)
        infos.set(system.key, { ...base, status: { _tag: "Skipped", reason: setup.reason } })
      }
    }
    if (!instances.some((i) => i.system.key === Systems.baselineKey)) {
      return yield* Effect.fail(new Error("raw pg, the baseline, could not run"))
    }

    const cellsPerRound = Systems.workloads.reduce(
      (n, w) => n + instances.filter(({ instance, system }) => Systems.runs(system, instance, w)).length,
      0
    )
    log(
      `${plan.mode} run: ${instances.length} systems, ${cellsPerRound} cells per round, ${plan.rounds} round(s) of ` +
        `${plan.warmupMs} + ${plan.durationMs} ms per cell after a ${plan.systemWarmupMs} ms system warm-up: about ${
          ((cellsPerRound * (plan.rounds * (plan.warmupMs + plan.durationMs) + plan.systemWarmupMs)) / 60_000).toFixed(1)
        } min of load cells`
    )
    const { cells, loads } = yield* Effect.promise((signal) =>
      runRounds(instances, Systems.workloads, plan, (cell, system) => {
        const r = cell.result
        log(
          `round ${cell.round + 1}/${plan.rounds} ${cell.workload.padEnd(11)} ${system.name.padEnd(36)} ` +
            `${Math.round(r.qps).toString().padStart(6)} qps  p50 ${r.p50Ms.toFixed(2)} ms  p99 ${r.p99Ms.toFixed(2)} ms  ` +
            `cpu ${r.cpuUsPerOp.toFixed(0)} µs/q${r.errors ? `  ${r.errors} ERRORS: ${r.firstError}` : ""}`
        )
      }, signal, (load) => {
        log(
          `${load.round < 0 ? "system warm-up" : `round ${load.round + 1}/${plan.rounds}`} done in ` +
            `${(load.elapsedMs / 1000).toFixed(0)} s; load average ${load.before.map((n) => n.toFixed(2)).join("/")} before, ` +
            `${load.after.map((n) => n.toFixed(2)).join("/")} after`
        )
      })
    )

    for (const { instance, system } of instances) {
      if (!instance.summary) continue
      const summary = yield* Effect.promise(() => instance.summary!().catch((e: Error) => `summary failed: ${e.message}`))
      const info = infos.get(system.key)
      if (info && summary) infos.set(system.key, { ...info, summary })
    }

    let lsn: Lsn.LsnResult | undefined
    let eventLog: EventLogBench.EventLogResult | undefined
    let cdc: CdcBench.CdcBenchResult | undefined
    if (args.secondary) {
      log("read-your-writes: LSN capture per write transaction")
      const l = yield* Lsn.run(bench, { quick: args.quick })
      lsn = l
      log(`LSN capture adds ${l.addedUs.toFixed(0)} µs per write transaction (${l.plainUs.toFixed(0)} -> ${l.sessionUs.toFixed(0)} µs)`)

      log("event log: appends (1 and 16 appenders) and reads from replicas")
      const e = yield* EventLogBench.run(bench, { quick: args.quick })
      eventLog = e
      log(
        `event log: ${e.appendsPerSecond1.toFixed(0)} appends/s (1), ${e.appendsPerSecond16.toFixed(0)} (16); ` +
          `${e.pageEventsPerSecond.toFixed(0)} events/s in pages, ${e.streamEventsPerSecond.toFixed(0)} by stream`
      )

      log("change data capture: catch-up into PostgreSQL and SQLite, lag under load")
      cdc = yield* Effect.scoped(CdcBench.runCdcBench(
        args.quick ? { changes: 5_000, seconds: 3, rate: 1_000, rounds: 2 } : { changes: 30_000, seconds: 5, rate: 1_000, rounds: 5 }
      ))
    }

    let micro: Micro.MicroResults | undefined
    if (args.micro) {
      log("micro-benchmarks: router decision and classifier")
      micro = yield* Micro.run(bench, { quick: args.quick })
    }

    const data: Report.RunData = {
      lsn,
      eventLog,
      cdc,
      date: started,
      commit,
      roundLoads: loads,
      command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}`,
      elapsedMs: performance.now() - t0,
      machine: describeMachine({
        postgres: bench.serverVersion,
        pgpool: pgpoolVersion ?? (binary === undefined ? undefined : "installed, did not start"),
        loadStart,
        busyCoresBefore
      }),
      settings: {
        mode: plan.mode,
        quick: args.quick,
        rounds: plan.rounds,
        durationMs: plan.durationMs,
        warmupMs: plan.warmupMs,
        systemWarmupMs: plan.systemWarmupMs,
        gcBetweenCells: Host.collect() !== undefined,
        poolSize: bench.poolSize,
        replicas: bench.replicas.length
      },
      baseline: Systems.baselineKey,
      systems: Systems.all.filter((s) => infos.has(s.key)).map((s) => infos.get(s.key)!),
      workloads: Systems.workloads.map(({ concurrency, fibers, key, title }) => ({
        key,
        title,
        concurrency,
        ...(fibers ? { against: fibers.against } : {})
      })),
      cells,
      micro
    }
    const markdown = Report.render({ ...data, notes: Report.notes(data) })
    const out = Path.resolve(process.cwd(), args.out)
    Fs.writeFileSync(out, markdown)
    process.stdout.write(markdown + "\n")
    log(`wrote ${out}`)
  }).pipe(Effect.scoped)

const isMain = process.argv[1] !== undefined && Path.resolve(process.argv[1]) === Path.resolve(new URL(import.meta.url).pathname)

if (isMain) {
  runMain({
    parse: () => parseArgs(process.argv.slice(2)),
    program: main,
    log,
    shutsDown: "servers, pgpool and pools are being closed",
    startedAt: t0
  })
}
