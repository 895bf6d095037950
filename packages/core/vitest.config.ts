import { defineConfig } from "vitest/config"

// Pure functions only: no server, no Effect; every file runs in parallel.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"]
  }
})
