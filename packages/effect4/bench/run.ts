/**
 * The Effect 4 line's benchmark (issue 22): `npm run bench -- [flags]` here,
 * or `npm run bench:effect4 -- [flags]` at the repository root (which writes
 * BENCHMARKS-effect4.md there).
 *
 *   (no flags)         full run: 5 rounds, 0.5 s warm-up + 3 s measured per cell, 0.5 s system
 *                      warm-up; about 15 minutes on 2 cores with every system (41 cells a round)
 *   --quick            5 rounds too, 0.25 + 1 s per cell, 0.25 s system warm-up: about 4 minutes
 *   --smoke            checks that everything runs, no figures worth keeping: 5 rounds of
 *                      0.05 + 0.2 s cells (about a minute)
 *   --out <file>       where the Markdown goes (default BENCHMARKS-effect4.md)
 *   --only <k1,k2>     systems to run, by key (raw pg, `pg`, always runs: it is the baseline)
 *   --rounds <n>       override the number of rounds (below 5 no target is judged)
 *   --duration <ms>    override the measured window per cell
 *   --warmup <ms>      override the warm-up per cell
 *   --system-warmup <ms>  override the unrecorded warm-up per system and workload before round 1
 *
 * The method is the Effect 3 line's, from the same code (`packages/core/bench`):
 * every mode runs at least 5 rounds; round r of workload w starts at system
 * (r + w) mod n (`Stats.rotation`), raw pg included in every round, so every
 * ratio is paired within a round; the load average is recorded around every
 * round and the cores in use before the run (/proc/stat) decide whether the
 * report warns of a busy host.
 *
 * Then the CDC section (bench/cdc.ts): catch-up rounds into PostgreSQL and
 * SQLite on issue 24's mix, and lag at 1 000 transactions/s.
 *
 * Systems: raw `pg` Pool (the baseline), @effect/sql-pg 4 `PgClient` plain and
 * with `multiplex: true`, and our `RoutedClient` plain and with `multiplex: true`
 * for both roles (`primaryPool` / `replicaPool`); P connections per server.
 * Beside them, lent by the Effect 3 line's benchmark (`../effect3/bench/foreign.ts`)
 * on `SELECT 1` c=32 and the mix: the Effect 3 line's RoutedClient, @effect/sql-pg
 * 0.x PgClient, kysely-replication, drizzle's withReplicas and pgpool-II (when
 * installed), so that both lines and the peers are measured in one run. A
 * system that cannot be set up (e.g. the router's modules do not load yet) is
 * reported as skipped with the reason, and its targets as not measured.
 *
 * Everything runs inside one Scope: the cluster and every pool are closed when
 * it ends, also on failure or Ctrl-C.
 */
import * as CdcBench from "./cdc.js"
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
import * as Lent from "./lent.js"
import * as Load from "./load.js"
import * as Report from "./report.js"
import * as Systems from "./systems.js"

/** The shared flags; this line has no switches of its own. */
export const parseArgs = (argv: ReadonlyArray<string>): Rounds.Args =>
  Rounds.parseArgs(argv, { defaultOut: "BENCHMARKS-effect4.md" })

const t0 = performance.now()
const log = (message: string) =>
  process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(4)}s] ${message}\n`)

/** Whether `#lib/*` resolves to the compiled package (`npm run bench` passes the condition), not to `src/`. */
const compiled = process.execArgv.includes("--conditions=effect-sql-router-dist")

/** The libraries whose versions the report names, as this package resolves them. */
const libraries = ["effect", "@effect/sql-pg", "pg"]

type Ready = { readonly system: Systems.System; readonly instance: Systems.Instance }

const measure = (instance: Systems.Instance, workload: Systems.Workload, options: Load.LoadOptions) =>
  workload.fibers !== undefined && instance.effects !== undefined
    ? Load.runFibers(instance.effects.runPromise, workload.fibers.operation(instance.effects), options)
    : Load.run(workload.operation(instance), options)

/** The shared rounds over this line's systems and workloads. */
const runner: Rounds.Runner<Ready, Systems.Workload> = {
  keyOf: ({ system }) => system.key,
  runs: ({ instance, system }, workload) => Systems.runs(system, instance, workload),
  measure: ({ instance }, workload, options) => measure(instance, workload, options)
}

/** One call of each statement: a system that cannot run is reported, not benchmarked. */
const firstQueries = async (setup: Systems.Setup): Promise<Systems.Setup> => {
  if (setup._tag === "Skipped") return setup
  try {
    await setup.instance.select1()
    await setup.instance.read(1)
    await setup.instance.write(1)
    return setup
  } catch (error) {
    await setup.instance.close().catch(() => {})
    return { _tag: "Skipped", reason: `its first queries failed: ${String((error as Error)?.message ?? error)}` }
  }
}

const main = (args: Rounds.Args) =>
  Effect.gen(function*() {
    const started = new Date()
    const loadStart = Os.loadavg()[0] ?? 0
    const busyCoresBefore = yield* Effect.promise(() => Host.sampleBusyCores(2000))
    log(
      `before the run: load average ${Host.loadavg().map((n) => n.toFixed(2)).join("/")}, ` +
        `${busyCoresBefore === undefined ? "?" : busyCoresBefore.toFixed(2)} of ${Os.cpus().length} cores in use`
    )
    const commit = Host.gitCommit()
    const plan = Rounds.planOf(args)
    if (plan.rounds < Stats.minRoundsForVerdict) {
      log(`${plan.rounds} round(s): fewer than ${Stats.minRoundsForVerdict}, so no target will be judged`)
    }
    const known = [...Systems.all.map((s) => s.key), ...Lent.keys]
    for (const key of args.only ?? []) {
      if (!known.includes(key)) {
        return yield* Effect.fail(new Error(`unknown system "${key}"; known: ${known.join(", ")}`))
      }
    }
    const wanted = (key: string) => key === Systems.baselineKey || args.only === undefined || args.only.includes(key)

    if (!compiled) log("the library runs from its TypeScript sources (tsx): `npm run bench` runs the compiled package")
    log("starting the cluster (primary + 2 streaming replicas)")
    const bench = yield* BenchCluster.make({ replicas: 2 })
    log(
      `PostgreSQL ${bench.serverVersion} up: primary :${bench.primary.port}, replicas ${
        bench.replicas.map((r) => `:${r.port}`).join(" ")
      }`
    )

    const lent = yield* Lent.borrow(bench, wanted, log)
    const all = [...Systems.all, ...lent.systems]
    const selected = all.filter((s) => wanted(s.key))

    const infos = new Map<string, Report.RunData["systems"][number]>()
    const instances: Array<Ready> = []
    for (const system of selected) {
      const base = {
        key: system.key,
        name: system.name,
        routing: system.routing,
        readConnections: system.readConnections(bench.poolSize)
      }
      const setup = yield* Effect.acquireRelease(
        Effect.promise(() =>
          system.setup({ bench }).then(
            firstQueries,
            (error): Systems.Setup => ({ _tag: "Skipped", reason: `setup failed: ${String((error as Error)?.message ?? error)}` })
          )
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
      (n, w) => n + instances.filter((ready) => runner.runs(ready, w)).length,
      0
    )
    log(
      `${plan.mode} run: ${instances.length} systems, ${cellsPerRound} cells per round, ${plan.rounds} round(s) of ` +
        `${plan.warmupMs} + ${plan.durationMs} ms per cell after a ${plan.systemWarmupMs} ms system warm-up: about ${
          ((cellsPerRound * (plan.rounds * (plan.warmupMs + plan.durationMs) + plan.systemWarmupMs)) / 60_000).toFixed(1)
        } min of load cells`
    )
    const { cells, loads } = yield* Effect.promise((signal) =>
      Rounds.runRounds(instances, Systems.workloads, plan, runner, (cell, { system }) => {
        const r = cell.result
        log(
          `round ${cell.round + 1}/${plan.rounds} ${cell.workload.padEnd(18)} ${system.name.padEnd(46)} ` +
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

    log("change data capture: catch-up into PostgreSQL and SQLite, lag under load")
    const cdc = yield* Effect.scoped(CdcBench.runCdcBench(
      args.smoke
        ? { changes: 990, seconds: 1, rate: 200, rounds: 1 }
        : args.quick
        ? { changes: 5_000, seconds: 3, rate: 1_000, rounds: 2 }
        : { changes: 30_000, seconds: 5, rate: 1_000, rounds: 5 }
    ))

    const data: Report.RunData = {
      cdc,
      date: started,
      commit,
      roundLoads: loads,
      command: compiled
        ? `npm run bench:effect4${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}`
        : `npx tsx bench/run.ts${process.argv.length > 2 ? ` ${process.argv.slice(2).join(" ")}` : ""}`,
      compiled,
      elapsedMs: performance.now() - t0,
      machine: Host.describeMachine({
        postgres: bench.serverVersion,
        loadStart,
        busyCoresBefore,
        libraries: [...Host.libraryVersions(import.meta.url, libraries), ...lent.libraries]
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
      systems: all.filter((s) => infos.has(s.key)).map((s) => infos.get(s.key)!),
      workloads: Systems.workloads.map(({ concurrency, fibers, key, title }) => ({
        key,
        title,
        concurrency,
        ...(fibers ? { against: fibers.against } : {})
      })),
      cells
    }
    const markdown = Report.render({ ...data, notes: Report.notes(data) })
    const out = Path.resolve(process.cwd(), args.out)
    Fs.writeFileSync(out, markdown)
    process.stdout.write(markdown + "\n")
    log(`wrote ${out}; load average now ${Host.loadavg().map((n) => n.toFixed(2)).join("/")}`)
  }).pipe(Effect.scoped)

const isMain = process.argv[1] !== undefined &&
  Path.resolve(process.argv[1]) === Path.resolve(new URL(import.meta.url).pathname)

if (isMain) {
  runMain({
    parse: () => parseArgs(process.argv.slice(2)),
    program: main,
    log,
    shutsDown: "servers and pools are being closed",
    startedAt: t0
  })
}
