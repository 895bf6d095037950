import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"
import { BaseSequencer, type TestSpecification } from "vitest/node"

const src = (path: string) => fileURLToPath(new URL(`./src/${path}`, import.meta.url))
const core = (path: string) => fileURLToPath(new URL(`../core/src/${path}`, import.meta.url))

const isPackageCheck = (spec: TestSpecification) => spec.moduleId.endsWith("/test/Package.test.ts")

// The packaging check builds and packs (CPU for a minute or more) and takes
// the build lock its packs share: this line's runs first, the Effect 4
// line's last, so that the two never overlap when the root `npm test` runs
// the lines side by side.
class PackageCheckFirst extends BaseSequencer {
  override async sort(files: Array<TestSpecification>): Promise<Array<TestSpecification>> {
    const sorted = await super.sort(files)
    return [...sorted.filter(isPackageCheck), ...sorted.filter((spec) => !isPackageCheck(spec))]
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
    sequence: { concurrent: false, sequencer: PackageCheckFirst },
    // The router logs health transitions; show them only for failing tests.
    silent: "passed-only"
  }
})
