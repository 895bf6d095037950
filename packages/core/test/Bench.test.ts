import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import * as Host from "../bench/host.js"
import type { LoadResult } from "../bench/load.js"
import * as Report from "../bench/report.js"
import * as Rounds from "../bench/rounds.js"
import * as Stats from "../bench/stats.js"

// The pure parts both lines' benchmarks share (packages/core/bench): statistics,
// order of systems, verdicts, modes, report sections. No servers, no timing.
describe("bench statistics", () => {
  it("median, min and max over rounds, ignoring non-finite values", () => {
    expect(Stats.median([3, 1, 2])).toBe(2)
    expect(Stats.median([4, 1, 3, 2])).toBe(2.5)
    expect(Stats.median([])).toBeNaN()
    expect(Stats.summarize([0.66, 0.58, Number.NaN, 0.62])).toEqual({ median: 0.62, min: 0.58, max: 0.66, n: 3 })
    expect(Stats.summarize([Number.NaN])).toBeUndefined()
  })

  it("formats the median with its range, and says when there is one round only", () => {
    expect(Stats.formatRange({ median: 0.62, min: 0.58, max: 0.66, n: 5 })).toBe("0.62 (0.58–0.66)")
    expect(Stats.formatRange({ median: 0.62, min: 0.58, max: 0.66, n: 5 }, 2, "×")).toBe("0.62× (0.58–0.66)")
    expect(Stats.formatRange({ median: 0.62, min: 0.62, max: 0.62, n: 1 })).toBe("0.62 (1 round)")
    expect(Stats.formatRange(undefined)).toBe("–")
  })

  it("rotates the order: over n rounds every system takes every position once", () => {
    const n = 5
    const orders = Array.from({ length: n }, (_, round) => Stats.rotation(n, round))
    expect(orders[0]).toEqual([0, 1, 2, 3, 4])
    expect(orders[1]).toEqual([1, 2, 3, 4, 0])
    for (let position = 0; position < n; position++) {
      expect(new Set(orders.map((order) => order[position])).size).toBe(n)
    }
    // Every round is a permutation: the baseline (system 0) runs in every round.
    for (const order of orders) expect([...order].sort()).toEqual([0, 1, 2, 3, 4])
    expect(Stats.rotation(3, 1, 1)).toEqual([2, 0, 1])
    expect(Stats.rotate(["pg", "routed", "kysely"], 4)).toEqual(["routed", "kysely", "pg"])
    expect(Stats.rotation(0, 3)).toEqual([])
  })

  it("calls a target met only when its whole range clears the bar", () => {
    const r = (median: number, min: number, max: number, n = 5) => ({ median, min, max, n })
    expect(Stats.verdict(r(0.74, 0.71, 0.8), 0.7, "atLeast")).toBe("met")
    expect(Stats.verdict(r(0.74, 0.43, 0.85), 0.7, "atLeast")).toBe("not met: median clears, range does not")
    expect(Stats.verdict(r(0.62, 0.61, 0.62), 0.7, "atLeast")).toBe("missed")
    expect(Stats.verdict(r(7, 6, 7.9), 8, "atMost")).toBe("met")
    expect(Stats.verdict(r(7, 6, 9.9), 8, "atMost")).toBe("not met: median clears, range does not")
    expect(Stats.verdict(r(9, 8.5, 9.9), 8, "atMost")).toBe("missed")
    expect(Stats.verdict(r(0.9, 0.9, 0.9, 1), 0.7, "atLeast")).toBe("not judged: fewer than 5 rounds")
    expect(Stats.verdict(undefined, 0.7, "atLeast")).toBe("not measured")
  })

  it("says ahead only when one system was ahead in every round", () => {
    const a = new Map([[0, 10], [1, 10], [2, 10]])
    const b = new Map([[0, 8], [1, 8], [2, 8]])
    const mixed = new Map([[0, 8], [1, 12], [2, 10.1]])
    expect(Stats.describeComparison(Stats.compareRounds(a, b), "A", "B")).toBe("A was ahead of B in every round (3)")
    expect(Stats.describeComparison(Stats.compareRounds(b, a), "B", "A")).toBe("B was behind A in every round (3)")
    const c = Stats.compareRounds(a, mixed)
    expect(c).toEqual({ rounds: 3, aAhead: 1, bAhead: 1 })
    expect(Stats.describeComparison(c, "A", "B")).toContain("no consistent order")
  })

  it("flags a host busy with other work when the run starts, not the run's own load", () => {
    expect(Stats.busyHost(0.1, 3.5, 2)).toBe(false) // a high load average left by earlier work, the cores idle now
    expect(Stats.busyHost(0.9, 0.2, 2)).toBe(true)
    expect(Stats.busyHost(undefined, 1.5, 2)).toBe(true) // no /proc/stat: the load average decides
    expect(Stats.busyHost(undefined, 0.5, 2)).toBe(false)
    // cpu user nice system idle iowait: 2 cores, 100 ticks each, 150 of the 200 idle -> half a core in use
    expect(Stats.busyCores([0, 0, 0, 0, 0], [40, 0, 10, 150, 0], 2)).toBeCloseTo(0.5)
  })

})

describe("bench modes", () => {
  it("runs at least 5 rounds in every mode; quick and smoke shorten the cells", () => {
    const plan = (argv: ReadonlyArray<string>) => Rounds.planOf(Rounds.parseArgs(argv, { defaultOut: "B.md" }))
    const full = plan([])
    const quick = plan(["--quick"])
    const smoke = plan(["--smoke"])
    for (const p of [full, quick, smoke]) expect(p.rounds).toBeGreaterThanOrEqual(Stats.minRoundsForVerdict)
    expect(quick.durationMs).toBeLessThan(full.durationMs)
    expect(smoke.durationMs).toBeLessThan(quick.durationMs)
    expect(plan(["--smoke", "--rounds", "2"])).toMatchObject({ mode: "smoke, custom", rounds: 2 })
  })

  it("reads the common flags and the line's own switches, and names a flag it does not know", () => {
    const args = Rounds.parseArgs(["--only", "a, b", "--out", "X.md", "--no-micro"], {
      defaultOut: "B.md",
      switches: ["--no-micro"]
    })
    expect(args).toMatchObject({ only: ["a", "b"], out: "X.md", quick: false, smoke: false })
    expect([...args.switches]).toEqual(["--no-micro"])
    expect(Rounds.parseArgs([], { defaultOut: "B.md" }).out).toBe("B.md")
    expect(() => Rounds.parseArgs(["--no-micro"], { defaultOut: "B.md" })).toThrow("unknown flag --no-micro")
    expect(() => Rounds.parseArgs(["--rounds", "0"], { defaultOut: "B.md" })).toThrow("--rounds needs a positive integer")
    expect(() => Rounds.parseArgs(["--out"], { defaultOut: "B.md" })).toThrow("--out needs a value")
  })
})

const fakeResult = (qps: number, errors = 0): LoadResult => ({
  concurrency: 32,
  completed: qps,
  errors,
  firstError: errors > 0 ? "Error: boom" : undefined,
  windowMs: 1000,
  qps,
  p50Ms: 1,
  p99Ms: 2,
  cpuUsPerOp: 50,
  gcUsPerOp: 1
})

describe("bench rounds", () => {
  it("runs every system once per workload per round in the rotated order, after an unrecorded warm-up", async () => {
    const order: Array<string> = []
    const workloads = [{ key: "w0", concurrency: 1 }, { key: "w1", concurrency: 2 }]
    const { cells, loads } = await Rounds.runRounds(
      ["pg", "a", "b"],
      workloads,
      { rounds: 2, durationMs: 1, warmupMs: 0, systemWarmupMs: 1 },
      {
        keyOf: (key) => key,
        runs: (key, workload) => !(key === "b" && workload.key === "w1"),
        measure: async (key, workload, options) => {
          order.push(`${key}/${workload.key}/${options.durationMs}`)
          return fakeResult(100)
        }
      }
    )
    expect(loads.map((l) => l.round)).toEqual([-1, 0, 1])
    // Warm-up: every system on each of its workloads; then round 0 starts w0 at system 0 and w1 at system 1.
    expect(order.slice(0, 5)).toEqual(["pg/w0/1", "pg/w1/1", "a/w0/1", "a/w1/1", "b/w0/1"])
    expect(cells.map((c) => `${c.round}:${c.workload}:${c.system}`)).toEqual([
      "0:w0:pg", "0:w0:a", "0:w0:b", "0:w1:a", "0:w1:pg",
      "1:w0:a", "1:w0:b", "1:w0:pg", "1:w1:pg", "1:w1:a"
    ])
  })
})

describe("bench report sections", () => {
  const routed = [0.72, 0.6, 0.75, 0.73, 0.7]
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
      load: { start: 0.1, end: 1.1 },
      busyCoresBefore: 0.9,
      libraries: [["effect", "4.1.5"]]
    },
    settings: {
      mode: "smoke",
      quick: false,
      rounds: 5,
      durationMs: 200,
      warmupMs: 50,
      systemWarmupMs: 50,
      poolSize: 10,
      replicas: 2
    },
    baseline: "pg",
    systems: [
      { key: "pg", name: "raw pg (primary)", routing: "", readConnections: 10, status: { _tag: "Ran" } },
      { key: "routed", name: "routed", routing: "", readConnections: 20, status: { _tag: "Ran" }, summary: "r0 5 reads" },
      { key: "other", name: "other", routing: "", readConnections: 20, status: { _tag: "Skipped", reason: "no module" } }
    ],
    workloads: [{ key: "select1-c32", title: "`SELECT 1`, concurrency 32", concurrency: 32 }],
    cells: [0, 1, 2, 3, 4].flatMap((round) => [
      { system: "pg", workload: "select1-c32", round, result: fakeResult(10_000) },
      { system: "routed", workload: "select1-c32", round, result: fakeResult(10_000 * routed[round]!, round === 0 ? 3 : 0) }
    ])
  }

  it("warns of a smoke run and of a host busy before the run, above every figure", () => {
    const text = Report.header(data, { title: "# T", harness: "`bench/`", rerun: "run it for real" }).join("\n")
    expect(text).toContain("**Smoke run** (cells of 200 ms)")
    expect(text).toContain("Its figures are not results; run it for real.")
    expect(text).toContain("**The host was busy with other work when this run started**")
    expect(Report.header({ ...data, settings: { ...data.settings, mode: "full", rounds: 3 } }, {
      title: "# T",
      harness: "`bench/`",
      rerun: ""
    }).join("\n")).toContain("**3 rounds only: no target is judged.**")
  })

  it("judges a ratio target on its whole range and says why a target has no figure", () => {
    const met = Report.ratioTarget(data, "1", "≥ 0.5×", Report.ratio(data, "routed", "pg", "select1-c32"), 0.5, ["routed"])
    expect(met).toMatchObject({ measured: "0.72× (0.60–0.75)", status: "met", detail: undefined })
    const partial = Report.ratioTarget(data, "1", "≥ 0.7×", Report.ratio(data, "routed", "pg", "select1-c32"), 0.7, ["routed"])
    expect(partial.status).toBe("not met: median clears, range does not")
    const skipped = Report.ratioTarget(data, "1", "other ≥ 1×", Report.ratio(data, "other", "pg", "select1-c32"), 1, ["other"])
    expect(skipped).toMatchObject({ measured: "–", status: "not measured", detail: "other skipped: no module" })
    const lines = Report.verdictLines([met, partial, skipped]).join("\n")
    expect(lines).toContain("- Targets: 1 met (whole range clears the bar), 1 not met although the median clears, 0 missed, 1 not measured.")
    expect(lines).toContain("  - ≥ 0.7×: 0.72× (0.60–0.75) (not met: median clears, range does not)")
    expect(Report.targetsTable([met, skipped])).toContain("| 1 | other ≥ 1× | – — other skipped: no module | **not measured** |")
  })

  it("renders the machine, per-workload, error and system sections from the numbers", () => {
    const machine = Report.machineSection(data, [["extra", "row"]]).join("\n")
    expect(machine).toContain("| git commit | abc1234 |")
    expect(machine).toContain("| extra | row |")
    expect(machine).toContain("| cores in use before the run | 0.90 of 2 (over 2 s, from /proc/stat) |")
    expect(machine).toMatch(/\| 1 \| 1\.00 \/ 1\.00 \/ 1\.00 \| 1\.20 \/ 1\.00 \/ 1\.00 \| 1 s \|/)
    const workload = Report.workloadTable(data, data.workloads[0]!)
    expect(workload).toContain("| raw pg (primary) | 10,000 | 1.00 | 2.00 | 50 | 1.0 | 1.00× (1.00–1.00) |")
    expect(workload).toContain("| routed ⚠ 3 errors | 7,200 |")
    expect(Report.errorsList(data)).toEqual(["- routed, select1-c32: 3 errors, first: Error: boom"])
    expect(Report.ratioMatrix(data)).toContain("| routed | 0.72× (0.60–0.75) |")
    const systems = Report.systemsSection(data).join("\n")
    expect(systems).toContain("| routed | routed |  | ran; r0 5 reads |")
    expect(systems).toContain("| other | other |  | **skipped**: no module |")
    expect(Report.methodSection(data).join("\n")).toContain("round r of workload w starts at system (r + w) mod n")
    expect(Report.methodSection(data, ["line's own bullet"]).slice(-2)).toEqual(["- line's own bullet", ""])
  })
})

describe("bench host", () => {
  it("reads library versions as Node resolves them from the caller, and marks a missing one", () => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "bench-host-"))
    try {
      Fs.mkdirSync(Path.join(dir, "node_modules", "lib-a"), { recursive: true })
      Fs.writeFileSync(Path.join(dir, "node_modules", "lib-a", "package.json"), JSON.stringify({ version: "1.2.3" }))
      const from = new URL(`file://${Path.join(dir, "run.js")}`).href
      expect(Host.libraryVersions(from, ["lib-a", "lib-missing-here"])).toEqual([["lib-a", "1.2.3"], ["lib-missing-here", "?"]])
    } finally {
      Fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
