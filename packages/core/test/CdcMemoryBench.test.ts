import { describe, expect, it } from "vitest"
import * as Memory from "../bench/cdcMemory.js"

describe("bench/cdcMemory (the CDC memory benchmark's pure parts)", () => {
  it("options default to 1M rows, the library's batch size (2 000), one target transaction and Node's heap", () => {
    const options = Memory.parseMemoryOptions([])
    expect(options).toEqual({ rows: 1_000_000, batchSize: 2_000, atomicity: "transaction", heap: 0 })
    expect(Memory.heapFlags(options)).toEqual([])
  })

  it("reads every flag, and --heap caps the child's old space", () => {
    const options = Memory.parseMemoryOptions(["--rows", "5000", "--batch-size", "500", "--atomicity", "batch", "--heap", "128"])
    expect(options).toEqual({ rows: 5000, batchSize: 500, atomicity: "batch", heap: 128 })
    expect(Memory.heapFlags(options)).toEqual(["--max-old-space-size=128"])
  })

  it("a bad or missing value fails naming the flag and the value", () => {
    expect(() => Memory.parseMemoryOptions(["--rows", "1e3.5"])).toThrow(/--rows must be a whole number of at least 1, got "1e3.5"/)
    expect(() => Memory.parseMemoryOptions(["--batch-size", "0"])).toThrow(/--batch-size .* got "0"/)
    expect(() => Memory.parseMemoryOptions(["--heap", "-1"])).toThrow(/--heap must be a whole number of at least 0/)
    expect(() => Memory.parseMemoryOptions(["--atomicity", "row"])).toThrow(/--atomicity must be "transaction" or "batch", got "row"/)
    expect(() => Memory.parseMemoryOptions(["--rows"])).toThrow(/--rows needs a value/)
    expect(() => Memory.parseMemoryOptions(["--rows", "--heap", "128"])).toThrow(/--rows needs a value/)
  })

  it("one rule per target over big, without snapshot, with the run's batch size and atomicity", () => {
    const rules = Memory.memoryRules({ rows: 10, batchSize: 7, atomicity: "batch", heap: 0 })
    expect(rules).toEqual([
      { name: "big_lite", tables: ["big"], target: "SQLite", snapshot: false, batchSize: 7, atomicity: "batch" },
      { name: "big_pg", tables: ["big"], target: "PostgreSQL", snapshot: false, batchSize: 7, atomicity: "batch" }
    ])
  })

  it("the transaction inserts the asked rows into the 10-column table", () => {
    expect(Memory.createTable).toMatch(/^CREATE TABLE big \(id int8 PRIMARY KEY,/)
    expect(Memory.createTable.match(/,/g)).toHaveLength(10) // 10 columns, numeric(12,2) has one more comma
    expect(Memory.insertRows(1234)).toMatch(/^INSERT INTO big SELECT g, .* FROM generate_series\(1, 1234\) g$/s)
  })

  it("the child's input goes through its environment and back; a missing variable is named", () => {
    const input: Memory.ChildInput = {
      rule: Memory.memoryRules(Memory.parseMemoryOptions([]))[1]!,
      source: "postgres://u@h:1/s",
      pg: "postgres://u@h:2/t",
      sqlite: "/tmp/x/big.db"
    }
    expect(Memory.readChildEnv(Memory.childEnv(input))).toEqual(input)
    const { CDC_PG: _, ...partial } = Memory.childEnv(input)
    expect(() => Memory.readChildEnv(partial)).toThrow(/needs CDC_PG/)
  })

  it("the report gives what ran and a verdict per target against 256 MiB", () => {
    const results: ReadonlyArray<Memory.ChildResult> = [
      { target: "SQLite", changes: 1_000_000, millis: 41_230, baselineRssMiB: 90, peakRssMiB: 256 },
      { target: "PostgreSQL", changes: 1_000_000, millis: 63_000, baselineRssMiB: 91, peakRssMiB: 257 }
    ]
    const text = Memory.renderMemory("Effect 4 line", { rows: 1_000_000, batchSize: 10_000, atomicity: "transaction", heap: 128 }, results)
    const lines = text.split("\n")
    expect(lines[0]).toBe("Effect 4 line: source transaction of 1000000 rows, batchSize 10000, atomicity transaction, child heap capped at 128 MiB:")
    expect(lines[1]).toContain("<= 256 MiB")
    expect(lines[3]).toBe("| SQLite | 1000000 | 41.2 | 90 | 256 | yes |")
    expect(lines[4]).toBe("| PostgreSQL | 1000000 | 63.0 | 91 | 257 | no |")
    expect(Memory.renderMemory("x", Memory.parseMemoryOptions([]), [])).toContain("Node's default heap")
  })
})
