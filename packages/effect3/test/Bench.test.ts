import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as BenchCluster from "../bench/cluster.js"
import type { LoadResult } from "../bench/load.js"
import * as Report from "../bench/report.js"
import { describeMachine, parseArgs, planOf, runRounds } from "../bench/run.js"
import * as Systems from "../bench/systems.js"

// Pure parts of this line's benchmark: modes, report layout. The shared
// statistics (medians, rotation, verdicts, the busy-host rule) are tested in
// packages/core/test/Bench.test.ts. No servers, no timing.
describe("bench modes", () => {
  it("runs at least 5 rounds in every mode; quick and smoke shorten the cells", () => {
    const full = planOf(parseArgs([]))
    const quick = planOf(parseArgs(["--quick"]))
    const smoke = planOf(parseArgs(["--smoke"]))
    for (const plan of [full, quick, smoke]) expect(plan.rounds).toBeGreaterThanOrEqual(5)
    expect(quick.durationMs).toBeLessThan(full.durationMs)
    expect(smoke.durationMs).toBeLessThan(quick.durationMs)
    expect(planOf(parseArgs(["--quick", "--duration", "300", "--warmup", "0"]))).toMatchObject({
      mode: "quick, custom",
      rounds: 5,
      durationMs: 300,
      warmupMs: 0
    })
    expect(parseArgs(["--smoke"])).toMatchObject({ micro: false, secondary: false })
  })
})

const fakeResult = (qps: number): LoadResult => ({
  concurrency: 32,
  completed: qps,
  errors: 0,
  firstError: undefined,
  windowMs: 1000,
  qps,
  p50Ms: 1,
  p99Ms: 2,
  cpuUsPerOp: 50,
  gcUsPerOp: 1
})

describe("bench report", () => {
  // raw pg, RoutedClient and kysely-replication over 5 rounds; the RoutedClient's ratio
  // ranges 0.60–0.75 (median 0.72), kysely's 0.80–0.86.
  const routed = [0.72, 0.6, 0.75, 0.73, 0.7]
  const kysely = [0.8, 0.82, 0.86, 0.84, 0.83]
  const data: Report.RunData = {
    date: new Date("2026-01-01T00:00:00Z"),
    command: "test",
    commit: "abc1234",
    roundLoads: [0, 1, 2, 3, 4].map((round) => ({ round, before: [1, 1, 1], after: [1.2, 1, 1], elapsedMs: 1000 })),
    elapsedMs: 60_000,
    machine: {
      cpu: "test CPU",
      cores: 2,
      memoryGiB: 4,
      os: "test",
      node: "v20",
      postgres: "18",
      pgpool: undefined,
      load: { start: 0.1, end: 1.1 },
      libraries: []
    },
    settings: {
      mode: "quick",
      quick: true,
      rounds: 5,
      durationMs: 1000,
      warmupMs: 250,
      systemWarmupMs: 250,
      poolSize: 10,
      replicas: 2
    },
    baseline: "pg",
    systems: [
      { key: "pg", name: "raw pg (primary)", routing: "", readConnections: 10, status: { _tag: "Ran" } },
      { key: "routed", name: "RoutedClient (ours)", routing: "", readConnections: 20, status: { _tag: "Ran" } },
      { key: "kysely", name: "kysely-replication", routing: "", readConnections: 20, status: { _tag: "Ran" } }
    ],
    workloads: [{ key: "select1-c32", title: "`SELECT 1`, concurrency 32", concurrency: 32 }],
    cells: [0, 1, 2, 3, 4].flatMap((round) => [
      { system: "pg", workload: "select1-c32" as const, round, result: fakeResult(10_000) },
      { system: "routed", workload: "select1-c32" as const, round, result: fakeResult(10_000 * routed[round]!) },
      { system: "kysely", workload: "select1-c32" as const, round, result: fakeResult(10_000 * kysely[round]!) }
    ]),
    micro: undefined
  }

  it("pairs ratios by round and judges targets on the whole range", () => {
    const r = Report.ratio(data, "routed", "pg", "select1-c32")!
    expect(r.median).toBeCloseTo(0.72)
    expect(r.min).toBeCloseTo(0.6)
    expect(r.max).toBeCloseTo(0.75)
    const target = Report.targets(data).find((t) => t.target.startsWith("RoutedClient ≥ 0.70× raw pg"))!
    expect(target.measured).toBe("0.72× (0.60–0.75)")
    expect(target.status).toBe("not met: median clears, range does not")
  })

  it("shows median (min–max) in every ratio cell and generates the summary from the numbers", () => {
    const markdown = Report.render({ ...data, notes: Report.notes(data) })
    expect(markdown).toContain("| RoutedClient (ours) | 0.72× (0.60–0.75) |")
    expect(markdown).toContain("| kysely-replication | 0.83× (0.80–0.86) |")
    expect(markdown).toContain("the RoutedClient was behind kysely-replication in every round (5)")
    expect(markdown).toContain("| git commit | abc1234 |")
    expect(markdown).toContain("quick (`--quick`): 5 rounds")
    expect(markdown).toMatch(/\| 1 \| 1\.00 \/ 1\.00 \/ 1\.00 \| 1\.20 \/ 1\.00 \/ 1\.00 \| 1 s \|/)
    expect(markdown).toContain(
      "  - RoutedClient ≥ 0.70× raw pg, `SELECT 1` c=32: 0.72× (0.60–0.75) (not met: median clears, range does not)"
    )
    expect(markdown).not.toMatch(/ahead of kysely/)
  })

  it("renders the secondary sections and judges micro-benchmarks on their worst repetition", () => {
    const markdown = Report.render({
      ...data,
      lsn: {
        transactions: 500,
        rounds: 5,
        plainUs: 800,
        sessionUs: 930,
        addedUs: 130,
        plainPerRound: [790, 800, 810, 805, 795],
        sessionPerRound: [920, 930, 940, 935, 925],
        addedPerRound: [130, 130, 130, 130, 130]
      },
      eventLog: {
        appendsPerSecond1: 600,
        appendsPerSecond16: 190,
        conflictsPerAppend16: 4,
        pageEventsPerSecond: 55_000,
        streamEventsPerSecond: 78_000,
        readLogSize: 1000,
        replicas: 2,
        rounds: 5,
        perRound: {
          appends1: [590, 600, 610, 605, 595],
          appends16: [190, 190, 190, 190, 190],
          conflicts16: [4, 4, 4, 4, 4],
          pageEvents: [55_000, 55_000, 55_000, 55_000, 55_000],
          streamEvents: [78_000, 78_000, 78_000, 78_000, 78_000]
        }
      },
      micro: {
        decision: [{
          label: "pick + release, round-robin",
          usPerOp: 0.4,
          cpuUsPerOp: 0.4,
          iterations: 100,
          cpuUsPerRep: [0.4, 0.5, 2.5, 0.45, 0.42]
        }],
        paths: [{ label: "`runPromise` of the fake I/O alone (the floor)", cpuUsPerOp: 10, opsPerSec: 100_000 }],
        classifier: [
          { label: "uncached (`cacheSize: 0`)", opsPerSec: 2e6, opsPerCpuSec: 2e6, iterations: 100, opsPerSecPerRep: [2e6, 1.9e6, 1.8e6, 2e6, 2e6] }
        ],
        corpusSize: 10,
        corpusReads: 6
      }
    })
    expect(markdown).toContain("| without a session | 800 (790–810) |")
    expect(markdown).toContain("| appends, 1 appender | 600 (590–610) |")
    expect(markdown).toMatch(/router decision .* \| 0\.45 µs \(0\.40–2\.50\) CPU over 5 repetitions \| \*\*not met: median clears, range does not\*\* \|/)
    expect(markdown).toContain("| classifier ≥ 100k uncached classifications/s | 2,000,000 (1,800,000–2,000,000)/s | met |")
  })
})

// A smoke test of the benchmark harness: one tiny case end to end. It checks
// that the harness runs and reports, never how fast anything is.
describe("bench harness", () => {
  it.scopedLive("runs raw pg SELECT 1 at concurrency 2 for 200 ms and renders it in the report", () =>
    Effect.gen(function*() {
      const bench = yield* BenchCluster.make({ replicas: 1 })
      const system = Systems.all.find((s) => s.key === Systems.baselineKey)!
      const setup = yield* Effect.acquireRelease(
        Effect.promise(() => system.setup({ bench, pgpool: { _tag: "Missing", reason: "not used in tests" } })),
        (setup) => setup._tag === "Ready" ? Effect.promise(() => setup.instance.close()) : Effect.void
      )
      if (setup._tag !== "Ready") return expect.fail(`raw pg did not set up: ${setup.reason}`)
      const workload = { ...Systems.workloads.find((w) => w.key === "select1-c1")!, concurrency: 2 }
      const { cells, loads } = yield* Effect.promise(() =>
        runRounds([{ system, instance: setup.instance }], [workload], {
          rounds: 1,
          durationMs: 200,
          warmupMs: 50,
          systemWarmupMs: 50
        }))
      expect(cells).toHaveLength(1)
      expect(loads.map((l) => l.round)).toEqual([-1, 0])
      const [cell] = cells
      expect(cell!.result.errors).toBe(0)
      expect(cell!.result.completed).toBeGreaterThan(0)

      const markdown = Report.render({
        date: new Date(),
        command: "test",
        elapsedMs: 0,
        roundLoads: loads,
        machine: describeMachine({ postgres: bench.serverVersion, pgpool: undefined, loadStart: 0 }),
        settings: {
          mode: "test",
          quick: false,
          rounds: 1,
          durationMs: 200,
          warmupMs: 50,
          systemWarmupMs: 50,
          poolSize: bench.poolSize,
          replicas: 1
        },
        baseline: Systems.baselineKey,
        systems: [{
          key: system.key,
          name: system.name,
          routing: system.routing,
          readConnections: system.readConnections(bench.poolSize),
          status: { _tag: "Ran" }
        }],
        workloads: [{ key: workload.key, title: workload.title, concurrency: 2 }],
        cells,
        micro: undefined
      })
      expect(markdown).toContain(workload.title)
      expect(markdown).toMatch(/\| raw pg \(primary\) \| [\d,]+ \|/)
      expect(markdown).toContain("| raw pg (primary) | pg |")
      expect(markdown).toContain("1 round only: no target is judged.")
    }), { timeout: 120_000 })
})
