import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as BenchCluster from "../bench/cluster.js"
import * as Report from "../bench/report.js"
import { describeMachine, runRounds } from "../bench/run.js"
import * as Systems from "../bench/systems.js"

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
      const cells = yield* Effect.promise(() =>
        runRounds([{ system, instance: setup.instance }], [workload], { rounds: 1, durationMs: 200, warmupMs: 50 }))
      expect(cells).toHaveLength(1)
      const [cell] = cells
      expect(cell!.result.errors).toBe(0)
      expect(cell!.result.completed).toBeGreaterThan(0)

      const markdown = Report.render({
        date: new Date(),
        command: "test",
        elapsedMs: 0,
        machine: describeMachine({ postgres: bench.serverVersion, pgpool: undefined, loadStart: 0 }),
        settings: { mode: "test", rounds: 1, durationMs: 200, warmupMs: 50, poolSize: bench.poolSize, replicas: 1 },
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
    }), { timeout: 120_000 })
})
