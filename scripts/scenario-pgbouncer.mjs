#!/usr/bin/env node
// `npm run scenario:pgbouncer`: both lines through PgBouncer in transaction
// mode, one PgBouncer per node of an embedded primary + 2 replicas, with
// `direct` URLs for LISTEN (see packages/*/bench/pgbouncer.ts; the PgBouncer
// control is packages/core/bench/pgbouncer.ts). Not part of `npm test`.
//
// Each line runs in a process of its own (its cluster and PgBouncers are
// stopped by that process, also on failure). Exit 0 when both pass, 2 when
// PgBouncer is missing (the message says how to install it), 1 otherwise.
// Starts PostgreSQL: take the cluster lock where one is used, e.g.
//   flock /work/wt/cluster.lock npm run scenario:pgbouncer
import { spawnSync } from "node:child_process"
import { createRequire } from "node:module"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

const root = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "..")
const require = createRequire(Path.join(root, "package.json"))
const tsx = Path.join(Path.dirname(require.resolve("tsx/package.json")), "dist", "cli.mjs")

let worst = 0
for (const line of ["effect3", "effect4"]) {
  const cwd = Path.join(root, "packages", line)
  const run = spawnSync(process.execPath, [tsx, "bench/pgbouncer.ts"], { cwd, stdio: "inherit" })
  const code = run.status ?? 1
  if (code === 2) process.exit(2)
  if (code !== 0) {
    console.error(`scenario:pgbouncer: the ${line} line failed (exit ${code})`)
    worst = 1
  }
}
process.exit(worst)
