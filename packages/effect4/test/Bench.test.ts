import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type { LoadResult } from "../../core/bench/load.js"
import * as Rounds from "../../core/bench/rounds.js"
import * as BenchCluster from "../bench/cluster.js"
import * as Load from "../bench/load.js"
import * as Report from "../bench/report.js"
import * as Systems from "../bench/systems.js"

// The Effect 4 benchmark's own pure parts: issue 22's targets and the report
// around them. The shared method is tested in packages/core/test/Bench.test.ts.
// No servers, no timing.
const fakeResult = (qps: number, cpuUsPerOp = 20): LoadResult => ({
  concurrency: 32,
  completed: qps,
  errors: 0,
  firstError: undefined,
  windowMs: 1000,
  qps,
  p50Ms: 1,
  p99Ms: 2,
  cpuUsPerOp,
  gcUsPerOp: 1
})

const rounds = [0, 1, 2, 3, 4]
// Per round, × raw pg: PgClient multiplex 2.6–2.8, our multiplexed routed client 2.2–2.7.
const pgClientMx = [2.6, 2.7, 2.8, 2.7, 2.6]
const routedMx = [2.5, 2.2, 2.7, 2.6, 2.4]

const data = (withRouted: boolean): Report.RunData => ({
  compiled: true,
  date: new Date("2026-01-01T00:00:00Z"),
  command: "test",
  elapsedMs: 60_000,
  machine: {
    cpu: "test CPU",
    cores: 2,
    memoryGiB: 4,
    os: "test",
    node: "v20",
    postgres: "18",
    load: { start: 0.1, end: 1.1 },
    busyCoresBefore: 0.1,
    libraries: []
  },
  settings: { mode: "full", quick: false, rounds: 5, durationMs: 3000, warmupMs: 500, systemWarmupMs: 500, poolSize: 10, replicas: 2 },
  baseline: "pg",
  systems: [
    { key: "pg", name: "raw pg (primary)", routing: "", readConnections: 10, status: { _tag: "Ran" } },
    { key: "pgclient-mx", name: "PgClient mx", routing: "", readConnections: 10, status: { _tag: "Ran" } },
    withRouted
      ? { key: "routed-mx", name: "Routed mx", routing: "", readConnections: 20, status: { _tag: "Ran" } }
      : { key: "routed-mx", name: "Routed mx", routing: "", readConnections: 20, status: { _tag: "Skipped", reason: "not loaded" } }
  ],
  workloads: [{ key: "select1-c32", title: "`SELECT 1`, concurrency 32", concurrency: 32 }],
  cells: rounds.flatMap((round) => [
    { system: "pg", workload: "select1-c32", round, result: fakeResult(10_000, 40) },
    { system: "pgclient-mx", workload: "select1-c32", round, result: fakeResult(10_000 * pgClientMx[round]!, 14) },
    ...(withRouted
      ? [{ system: "routed-mx", workload: "select1-c32", round, result: fakeResult(10_000 * routedMx[round]!, 16) }]
      : [])
  ])
})

describe("Effect 4 bench report", () => {
  it("judges issue 22's targets on the whole range of the per-round ratios", () => {
    const verdicts = Report.targets(data(true))
    const named = (text: string) => verdicts.find((target) => target.target.includes(text))!
    expect(verdicts).toHaveLength(7)
    expect(named("≥ 2.0× raw pg Pool, `SELECT 1` c=32")).toMatchObject({ measured: "2.50× (2.20–2.70)", status: "met" })
    expect(named("(stretch)")).toMatchObject({
      measured: "2.50× (2.20–2.70)",
      status: "not met: median clears, range does not"
    })
    // Paired by round: 2.5/2.6, 2.2/2.7, 2.7/2.8, 2.6/2.7, 2.4/2.6.
    const vsPgClient = named("with `multiplex: true` ≥ 0.9× @effect/sql-pg 4 PgClient")
    expect(vsPgClient.status).toBe("not met: median clears, range does not")
    expect(vsPgClient.measured).toBe("0.96× (0.81–0.96)")
    // Workloads and systems this run did not measure: c=128, c=8, c=1 and the plain pair.
    for (const text of ["c=128", "c=8", "c=1 ", "RoutedClient plain"]) {
      expect(named(text).status).toBe("not measured")
    }
  })

  it("reports the targets of a system that did not run as not measured, with the reason", () => {
    const verdicts = Report.targets(data(false))
    for (const target of verdicts) {
      expect(target.status).toBe("not measured")
      if (target.target.includes("multiplex")) expect(target.detail).toBe("Routed mx skipped: not loaded")
    }
    const markdown = Report.render({ ...data(false), notes: Report.notes(data(false)) })
    expect(markdown).toContain("Not measured in this run: Routed mx")
    expect(markdown).toContain("7 not measured")
    const fromSources = Report.render({ ...data(false), compiled: false })
    expect(fromSources).toContain("The library ran from its TypeScript sources through tsx, not as the compiled package")
  })

  it("renders the summary, the same-mode comparison and the notes from the numbers", () => {
    const run = data(true)
    const markdown = Report.render({ ...run, notes: Report.notes(run) })
    expect(markdown).toContain("# Benchmarks: the Effect 4 line")
    expect(markdown).toContain("Routed mx 2.50× (2.20–2.70); PgClient mx 2.70× (2.60–2.80)")
    expect(markdown).toContain("Routed mx was behind PgClient mx in every round (5) (0.96× (0.81–0.96) of its qps)")
    expect(markdown).toContain("| Routed mx ÷ PgClient mx | 0.96× (0.81–0.96) |")
    expect(markdown).toContain(
      "Routed mx spent 16.0 µs of client CPU per `SELECT 1` at c=32 and PgClient mx 14.0 µs (medians): a difference of 2.0 µs"
    )
    expect(markdown).toContain("| library code | the compiled package")
    expect(markdown).not.toContain("TypeScript sources through tsx")
    expect(markdown).toContain("- Not met:")
  })
})

describe("Effect 4 bench harness", () => {
  it("has raw pg as its baseline, issue 22's systems, and concurrency 1, 8, 32 and 128", () => {
    expect(Systems.baselineKey).toBe("pg")
    expect(Systems.all.map((s) => s.key)).toEqual(["pg", "pgclient", "pgclient-mx", "routed", "routed-mx", "routed-mx-primary"])
    expect(Systems.workloads.map((w) => w.concurrency)).toEqual([1, 8, 32, 128, 32, 32, 32])
  })
})

// A smoke test of the harness on a real cluster: raw pg and the multiplexed
// routed client, SELECT 1 at concurrency 2 for 200 ms, both harness styles,
// rendered. It checks that the harness runs and reports, never how fast anything is.
describe("Effect 4 bench on a cluster", () => {
  it.live("runs raw pg and the multiplexed RoutedClient for 200 ms each and renders them", () =>
    Effect.gen(function*() {
      const bench = yield* BenchCluster.make({ replicas: 1 })
      const chosen = Systems.all.filter((s) => s.key === "pg" || s.key === "routed-mx")
      const ready: Array<{ system: Systems.System; instance: Systems.Instance }> = []
      for (const system of chosen) {
        const setup = yield* Effect.acquireRelease(
          Effect.promise(() => system.setup({ bench })),
          (setup) => setup._tag === "Ready" ? Effect.promise(() => setup.instance.close()) : Effect.void
        )
        if (setup._tag !== "Ready") return expect.fail(`${system.key} did not set up: ${setup.reason}`)
        ready.push({ system, instance: setup.instance })
      }
      const workloads = Systems.workloads.filter((w) => w.key === "select1-c32" || w.key === "select1-c32-fibers")
        .map((w) => ({ ...w, concurrency: 2 }))
      const { cells, loads } = yield* Effect.promise(() =>
        Rounds.runRounds(ready, workloads, { rounds: 1, durationMs: 200, warmupMs: 50, systemWarmupMs: 0 }, {
          keyOf: ({ system }) => system.key,
          runs: ({ instance, system }, workload) => Systems.runs(system, instance, workload),
          measure: ({ instance }, workload, options) =>
            workload.fibers !== undefined && instance.effects !== undefined
              ? Load.runFibers(instance.effects.runPromise, workload.fibers.operation(instance.effects), options)
              : Load.run(workload.operation(instance), options)
        })
      )
      // raw pg has no fibers: 2 cells on the promise workload, 1 on the fibers one.
      expect(cells.map((c) => `${c.workload}:${c.system}`).sort()).toEqual([
        "select1-c32-fibers:routed-mx",
        "select1-c32:pg",
        "select1-c32:routed-mx"
      ])
      for (const cell of cells) {
        expect(cell.result.errors).toBe(0)
        expect(cell.result.completed).toBeGreaterThan(0)
      }
      const routed = ready.find((r) => r.system.key === "routed-mx")!
      const summary = yield* Effect.promise(() => routed.instance.summary!())
      expect(summary).toMatch(/^primary 0 reads \/ \d+ writes, replica-0 [1-9]\d* reads \/ 0 writes$/)
      const markdown = Report.render({
        compiled: false,
        date: new Date(),
        command: "test",
        elapsedMs: 0,
        roundLoads: loads,
        machine: {
          cpu: "test",
          cores: 2,
          memoryGiB: 1,
          os: "test",
          node: process.version,
          postgres: bench.serverVersion,
          load: { start: 0, end: 0 },
          libraries: []
        },
        settings: {
          mode: "test",
          quick: false,
          rounds: 1,
          durationMs: 200,
          warmupMs: 50,
          systemWarmupMs: 0,
          poolSize: bench.poolSize,
          replicas: 1
        },
        baseline: Systems.baselineKey,
        systems: ready.map(({ system }) => ({
          key: system.key,
          name: system.name,
          routing: system.routing,
          readConnections: system.readConnections(bench.poolSize),
          status: { _tag: "Ran" as const }
        })),
        workloads: workloads.map(({ concurrency, fibers, key, title }) => ({
          key,
          title,
          concurrency,
          ...(fibers ? { against: fibers.against } : {})
        })),
        cells
      })
      expect(markdown).toMatch(/\| RoutedClient, multiplex \(ours\) \| [\d,]+ \|/)
      expect(markdown).toContain("1 round only: no target is judged.")
      expect(markdown).toContain("not judged: fewer than 5 rounds")
    }), { timeout: 120_000 })
})
