import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"
import { BaseSequencer, type TestSpecification } from "vitest/node"

const src = (path: string) => fileURLToPath(new URL(`./src/${path}`, import.meta.url))
const core = (path: string) => fileURLToPath(new URL(`../core/src/${path}`, import.meta.url))

const isPackageCheck = (spec: TestSpecification) => spec.moduleId.endsWith("/test/Package.test.ts")

// The packaging check builds and packs (CPU for a minute or more): this line
// runs it halfway through its files, the Effect 4 line last, so that when the
// root `npm test` runs the lines side by side it meets neither the other
// line's check nor the start, when every workspace's typecheck runs at once.
class PackageCheckHalfway extends BaseSequencer {
  override async sort(files: Array<TestSpecification>): Promise<Array<TestSpecification>> {
    const sorted = await super.sort(files)
    const others = sorted.filter((spec) => !isPackageCheck(spec))
    const half = Math.floor(others.length / 2)
    return [...others.slice(0, half), ...sorted.filter(isPackageCheck), ...others.slice(half)]
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
      { find: /^effect-sql-router$/, replacement: src("index.ts") },
      { find: /^effect-sql-router\/testing$/, replacement: src("testing/index.ts") },
      { find: /^effect-sql-router\/(.*)$/, replacement: src("$1.ts") },
      { find: /^@effect-sql-router\/core\/(.*)$/, replacement: core("$1.ts") }
    ]
  },
  test: {
    include: ["test/**/*.test.ts"],
    pool: "forks",
    poolOptions: { forks: { minForks: 1, maxForks: 1 } },
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    teardownTimeout: 60_000,
    sequence: { concurrent: false, sequencer: PackageCheckHalfway },
    // The router logs health transitions; show them only for failing tests.
    silent: "passed-only"
  }
})
