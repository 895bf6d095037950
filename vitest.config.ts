import { defineConfig } from "vitest/config"

// Two cores: every test file that needs PostgreSQL starts its own cluster, so
// at most two files run at once and hooks get generous time for server start.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    pool: "forks",
    poolOptions: { forks: { minForks: 1, maxForks: 2 } },
    fileParallelism: true,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    teardownTimeout: 60_000,
    sequence: { concurrent: false },
    // The router logs health transitions; show them only for failing tests.
    silent: "passed-only"
  }
})
