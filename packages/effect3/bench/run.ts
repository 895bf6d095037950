/**
 * The benchmark harness: `npm run bench -- [flags]`. Without flags: 5 rounds,
 * 0.5 s warm-up + 3 s measured per cell, about 12 minutes on 2 cores.
 *
 *   --quick            1 round, 0.3 + 1.5 s per cell (under 2 minutes)
 *   --out <file>       where the Markdown goes (default BENCHMARKS.md)
 *   --only <k1,k2>     systems to run, by key (raw pg, `pg`, always runs: it is the baseline)
 *   --rounds <n>       override the number of rounds
 *   --duration <ms>    override the measured window per cell
 *   --no-micro         skip the micro-benchmarks
 *
 * Everything runs inside one Scope: the cluster, pgpool and every pool are
 * closed when it ends, also on failure or Ctrl-C.
 *
 * pgpool-II is used when its binary is installed (`apt-get install pgpool2`
 * on Debian/Ubuntu) and reported as skipped otherwise; the harness never
 * installs anything.
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { performance } from "node:perf_hooks"
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
  readonly micro: boolean
}

const positive = (flag: string, text: string): number => {
  const n = Number(text)
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${flag} needs a positive integer, got "${text}"`)
  return n
}

export const parseArgs = (argv: ReadonlyArray<string>): Args => {
  let quick = false
  let out = "BENCHMARKS.md"
  let only: Array<string> | undefined
  let rounds: number | undefined
  let durationMs: number | undefined
  let micro = true
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    const value = () => {
      const v = argv[++i]
      if (v === undefined) throw new Error(`${arg} needs a value`)
      return v
    }
    if (arg === "--quick") quick = true
    else if (arg === "--out") out = value()
    else if (arg === "--only") only = value().split(",").map((s) => s.trim()).filter(Boolean)
    else if (arg === "--rounds") rounds = positive(arg, value())
    else if (arg === "--duration") durationMs = positive(arg, value())
    else if (arg === "--no-micro") micro = false
    else throw new Error(`unknown flag ${arg} (see bench/run.ts)`)
  }
  return { quick, out, only, rounds, durationMs, micro }
}

const t0 = performance.now()
const log = (message: string) => process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(4)}s] ${message}\n`)

/** The machine section of the report. */
export const describeMachine = (options: {
  readonly postgres: string
  readonly pgpool: string | undefined
  readonly loadStart: number
}): Report.Machine => {
  const cpus = Os.cpus()
  return {
    cpu: cpus[0]?.model.trim() ?? "unknown",
    cores: cpus.length,
    memoryGiB: Os.totalmem() / 2 ** 30,
    os: `${Os.type()} ${Os.release()} ${Os.arch()}`,
    node: process.version,
    postgres: options.postgres,
    pgpool: options.pgpool,
    load: { start: options.loadStart, end: Os.loadavg()[0] ?? 0 },
    libraries: libraryVersions()
  }
}

const libraryVersions = (): ReadonlyArray<readonly [string, string]> => {
  const names = ["effect", "@effect/sql", "@effect/sql-pg", "pg", "drizzle-orm", "kysely", "kysely-replication"]
  return names.map((name) => {
    try {
      const file = new URL(`../node_modules/${name}/package.json`, import.meta.url)
      return [name, (JSON.parse(Fs.readFileSync(file, "utf8")) as { version: string }).version] as const
    } catch {
      return [name, "?"] as const
    }
  })
}

/** Rotates `items` left by `by`, so every system takes every position over the rounds. */
const rotate = <A>(items: ReadonlyArray<A>, by: number): Array<A> =>
  items.length === 0 ? [] : items.map((_, i) => items[(i + by) % items.length]!)

export interface Plan {
  readonly rounds: number
  readonly durationMs: number
  readonly warmupMs: number
}

/**
 * Runs every ready system on every workload, round after round, and returns
 * the cells. The order rotates with the round and the workload, so that no
 * system always runs first, last, or right after the same neighbour.
 */
export const runRounds = async (
  instances: ReadonlyArray<{ readonly system: Systems.System; readonly instance: Systems.Instance }>,
  workloads: ReadonlyArray<Systems.Workload>,
  plan: Plan,
  onCell: (cell: Report.Cell, system: Systems.System) => void = () => {},
  signal?: AbortSignal
): Promise<Array<Report.Cell>> => {
  const cells: Array<Report.Cell> = []
  for (let round = 0; round < plan.rounds; round++) {
    for (const [w, workload] of workloads.entries()) {
      const eligible = instances.filter(({ instance, system }) => Systems.runs(system, instance, workload))
      for (const { instance, system } of rotate(eligible, round + w)) {
        if (signal?.aborted) return cells
        const options = { concurrency: workload.concurrency, durationMs: plan.durationMs, warmupMs: plan.warmupMs, signal }
        const result = workload.fibers !== undefined && instance.effects !== undefined
          ? await Load.runFibers(instance.effects.runPromise, workload.fibers.operation(instance.effects), options)
          : await Load.run(workload.operation(instance), options)
        const cell = { system: system.key, workload: workload.key, round, result }
        cells.push(cell)
        onCell(cell, system)
      }
    }
  }
  return cells
}

const main = (args: Args) =>
  Effect.gen(function*() {
    const started = new Date()
    const loadStart = Os.loadavg()[0] ?? 0
    const plan: Plan = args.quick
      ? { rounds: args.rounds ?? 1, durationMs: args.durationMs ?? 1500, warmupMs: 300 }
      : { rounds: args.rounds ?? 5, durationMs: args.durationMs ?? 3000, warmupMs: 500 }
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
      `${instances.length} systems, ${cellsPerRound} cells per round, ${plan.rounds} round(s) of ` +
        `${plan.warmupMs} + ${plan.durationMs} ms per cell: about ${
          ((cellsPerRound * plan.rounds * (plan.warmupMs + plan.durationMs)) / 60_000).toFixed(1)
        } min`
    )
    const cells = yield* Effect.promise((signal) =>
      runRounds(instances, Systems.workloads, plan, (cell, system) => {
        const r = cell.result
        log(
          `round ${cell.round + 1}/${plan.rounds} ${cell.workload.padEnd(11)} ${system.name.padEnd(36)} ` +
            `${Math.round(r.qps).toString().padStart(6)} qps  p50 ${r.p50Ms.toFixed(2)} ms  p99 ${r.p99Ms.toFixed(2)} ms  ` +
            `cpu ${r.cpuUsPerOp.toFixed(0)} µs/q${r.errors ? `  ${r.errors} ERRORS: ${r.firstError}` : ""}`
        )
      }, signal)
    )

    for (const { instance, system } of instances) {
      if (!instance.summary) continue
      const summary = yield* Effect.promise(() => instance.summary!().catch((e: Error) => `summary failed: ${e.message}`))
      const info = infos.get(system.key)
      if (info && summary) infos.set(system.key, { ...info, summary })
    }

    log("read-your-writes: LSN capture per write transaction")
    const lsn = yield* Lsn.run(bench, { quick: args.quick })
    log(`LSN capture adds ${lsn.addedUs.toFixed(0)} µs per write transaction (${lsn.plainUs.toFixed(0)} -> ${lsn.sessionUs.toFixed(0)} µs)`)

    log("event log: appends (1 and 16 appenders) and reads from replicas")
    const eventLog = yield* EventLogBench.run(bench, { quick: args.quick })
    log(
      `event log: ${eventLog.appendsPerSecond1.toFixed(0)} appends/s (1), ${eventLog.appendsPerSecond16.toFixed(0)} (16); ` +
        `${eventLog.pageEventsPerSecond.toFixed(0)} events/s in pages, ${eventLog.streamEventsPerSecond.toFixed(0)} by stream`
    )

    log("change data capture: catch-up into PostgreSQL and SQLite, lag under load")
    const cdc = yield* Effect.scoped(CdcBench.runCdcBench(
      args.quick ? { changes: 5_000, seconds: 3, rate: 200 } : { changes: 20_000, seconds: 10, rate: 200 }
    ))

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
      command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}`,
      elapsedMs: performance.now() - t0,
      machine: describeMachine({
        postgres: bench.serverVersion,
        pgpool: pgpoolVersion ?? (binary === undefined ? undefined : "installed, did not start"),
        loadStart
      }),
      settings: {
        mode: args.quick ? "quick" : args.rounds !== undefined || args.durationMs !== undefined ? "custom" : "full",
        rounds: plan.rounds,
        durationMs: plan.durationMs,
        warmupMs: plan.warmupMs,
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
  let args: Args
  try {
    args = parseArgs(process.argv.slice(2))
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`)
    process.exit(2)
  }
  const fiber = Effect.runFork(main(args))
  // Ctrl-C interrupts the program so that every finalizer (servers, pgpool, pools) runs. The handler stays
  // installed: tsx relays the terminal's SIGINT to this process, so it arrives twice, and a second default
  // SIGINT would kill the process before the finalizers are done.
  let interrupted = false
  const interrupt = () => {
    if (interrupted) return
    interrupted = true
    log("interrupted: shutting down (servers, pgpool and pools are being closed)")
    Effect.runFork(Fiber.interrupt(fiber))
  }
  process.on("SIGINT", interrupt)
  process.on("SIGTERM", interrupt)
  fiber.addObserver((exit) => {
    log(`finished in ${((performance.now() - t0) / 60_000).toFixed(1)} min`)
    if (exit._tag === "Failure") {
      process.stderr.write(`${Cause.pretty(exit.cause)}\n`)
      process.exitCode = 1
    }
    // Exit once stdout (a pipe writes asynchronously) has flushed the report.
    process.stdout.write("", () => process.exit())
  })
}
