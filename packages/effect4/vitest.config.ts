import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"
import { BaseSequencer, type TestSpecification } from "vitest/node"

// Effect 4 and vitest 5 declare Node >= 22; this line's tests also run on the
// Node 20 this repository supports. Vitest's reporter calls `Map.groupBy`
// (Node >= 21) when it prints a failure; the config file runs in the
// reporter's process, so the one missing function is supplied here.
if (typeof (Map as { groupBy?: unknown }).groupBy !== "function") {
  Object.defineProperty(Map, "groupBy", {
    configurable: true,
    writable: true,
    value: <K, V>(items: Iterable<V>, key: (item: V, index: number) => K): Map<K, Array<V>> => {
      const groups = new Map<K, Array<V>>()
      let index = 0
      for (const item of items) {
        const k = key(item, index++)
        const group = groups.get(k)
        if (group === undefined) groups.set(k, [item])
        else group.push(item)
      }
      return groups
    }
  })
}

const src = (path: string) => fileURLToPath(new URL(`./src/${path}`, import.meta.url))
const core = (path: string) => fileURLToPath(new URL(`../core/src/${path}`, import.meta.url))

const isPackageCheck = (spec: TestSpecification) => spec.moduleId.endsWith("/test/Package.test.ts")

// The packaging check builds and packs (CPU for a minute or more): this line
// runs it last, the Effect 3 line halfway through its files, so that when the
// root `npm test` runs the lines side by side it meets neither the other
// line's check nor the start, when every workspace's typecheck runs at once.
class PackageCheckLast extends BaseSequencer {
  override async sort(files: Array<TestSpecification>): Promise<Array<TestSpecification>> {
    const sorted = await super.sort(files)
    return [...sorted.filter((spec) => !isPackageCheck(spec)), ...sorted.filter(isPackageCheck)]
  }
}

// Two cores, and every file that needs PostgreSQL starts its own cluster with
// a load on it: files run one at a time, so that the fault tests' timing
// bounds (a dead replica leaves rotation within an interval plus the probe
// timeout) measure the router, not a neighbour's load. The root `npm test`
// runs the two lines side by side (scripts/test-all.mjs), so a file shares
// the machine with at most the other line's current file.
export default defineConfig({
  // The package by its name, and the core, from source (as tsconfig.json "paths" does for tsc and tsx).
  resolve: {
    alias: [
      { find: /^@effect-sql-router\/effect4$/, replacement: src("index.ts") },
      { find: /^@effect-sql-router\/effect4\/testing$/, replacement: src("testing/index.ts") },
      { find: /^@effect-sql-router\/effect4\/(.*)$/, replacement: src("$1.ts") },
      { find: /^@effect-sql-router\/core\/(.*)$/, replacement: core("$1.ts") }
    ]
  },
  test: {
    include: ["test/**/*.test.ts"],
    pool: "forks",
    maxWorkers: 1,
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    teardownTimeout: 60_000,
    sequence: { concurrent: false, sequencer: PackageCheckLast },
    // The router logs health transitions; show them only for failing tests.
    silent: "passed-only"
  }
})
