import { describe, expect, it } from "vitest"
import * as Bench from "../bench/cdc.js"

describe("bench/cdc (the CDC benchmark's pure parts)", () => {
  it("the backlog is transactions of 99 changes, a third per table, one in four an update of rows written before", () => {
    const statements = [...Bench.backlogStatements("r1", 990)]
    expect(statements).toHaveLength(10)
    expect(statements.every((s) => s.startsWith("DO $$ BEGIN ") && s.endsWith("; END $$"))).toBe(true)
    const updates = statements.filter((s) => s.includes("UPDATE "))
    expect(updates).toHaveLength(2) // transactions 3 and 7
    expect(updates[0]).toContain("UPDATE mix_a_r1 SET qty = qty + 1")
    expect(statements[0]).toContain("generate_series(1, 33)")
    expect(statements[1]).toContain("generate_series(34, 66)")
    for (const table of ["mix_a_r1", "mix_b_r1", "mix_c_r1"]) expect(statements[0]).toContain(table)
  })

  it("creates and drops the three suffixed tables of 10 columns", () => {
    const created = Bench.createMixStatements("x")
    expect(created.map((s) => s.split(" ")[2])).toEqual(["mix_a_x", "mix_b_x", "mix_c_x"])
    expect(created[0]!.match(/,/g)!.length).toBeGreaterThanOrEqual(9)
    expect(Bench.dropMixStatements("x")).toEqual(["mix_a_x", "mix_b_x", "mix_c_x"].map((t) => `DROP TABLE IF EXISTS ${t}`))
  })

  it("a target is met only when the whole range of its rounds clears it; the section shows median and range", () => {
    const round = (target: "PostgreSQL" | "SQLite", changesPerSecond: number) =>
      ({ target, changes: 30_000, transactions: 304, millis: 1000, changesPerSecond })
    const result: Bench.CdcBenchResult = {
      options: { changes: 30_000, seconds: 5, rate: 1000, rounds: 3 },
      throughput: [round("PostgreSQL", 21_000), round("SQLite", 60_000), round("PostgreSQL", 25_000), round("SQLite", 49_000), round("PostgreSQL", 22_000), round("SQLite", 55_000)],
      lag: [{ target: "SQLite", warmupMax: 120, samples: 500, p50: 4, p95: 9, p99: 14, max: 30, transactions: 5000, achievedRate: 990 }]
    }
    expect(Bench.summarizeThroughput(result)).toEqual([
      { target: "PostgreSQL", rounds: 3, median: 22_000, min: 21_000, max: 25_000, inOrder: [21_000, 25_000, 22_000], met: true },
      { target: "SQLite", rounds: 3, median: 55_000, min: 49_000, max: 60_000, inOrder: [60_000, 49_000, 55_000], met: false }
    ])
    const markdown = Bench.renderCdc(result)
    expect(markdown).toContain("| PostgreSQL | 3 | 22,000 | 21,000–25,000 | 21.0k, 25.0k, 22.0k | 20,000 | yes |")
    expect(markdown).toContain("| SQLite | 3 | 55,000 | 49,000–60,000 | 60.0k, 49.0k, 55.0k | 50,000 | no |")
    expect(markdown).toContain("3 interleaved rounds after 1 unrecorded warm-up catch-up(s) per target")
    expect(markdown).toContain("| SQLite | 1 | 990 | 4 | 14 | 14–14 | 30 | 120 | yes |")
  })

  it("lag: a target is met only when every round's p99 clears 50 ms; the warm-up's lag is shown apart, not judged", () => {
    const window = (target: "PostgreSQL" | "SQLite", p99: number, warmupMax: number) =>
      ({ target, warmupMax, samples: 500, p50: 5, p95: 20, p99, max: p99 + 10, transactions: 5000, achievedRate: 950 })
    const result: Bench.CdcBenchResult = {
      options: { changes: 30_000, seconds: 5, rate: 1000, rounds: 3, warmup: 2 },
      throughput: [],
      lag: [
        window("PostgreSQL", 30, 180),
        window("SQLite", 8, 20),
        window("PostgreSQL", 55, 150),
        window("SQLite", 6, Number.NaN),
        window("PostgreSQL", 40, 90),
        window("SQLite", 9, 12)
      ]
    }
    expect(Bench.summarizeLag(result)).toEqual([
      { target: "PostgreSQL", rounds: 3, achievedRate: 950, p50: 5, p99: 40, p99Min: 30, p99Max: 55, max: 65, warmupMax: 180, met: false },
      { target: "SQLite", rounds: 3, achievedRate: 950, p50: 5, p99: 8, p99Min: 6, p99Max: 9, max: 19, warmupMax: 20, met: true }
    ])
    const markdown = Bench.renderCdc(result)
    expect(markdown).toContain("after a warm-up of\n2 s")
    expect(markdown).toContain("| PostgreSQL | 3 | 950 | 5 | 40 | 30–55 | 65 | 180 | no |")
  })

  it("quantiles of an ascending list; NaN when empty", () => {
    expect(Bench.quantile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.5)).toBe(6)
    expect(Bench.quantile([1, 2, 3], 0.99)).toBe(3)
    expect(Bench.quantile([], 0.5)).toBeNaN()
  })
})
