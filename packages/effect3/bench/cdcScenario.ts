/**
 * The CDC acceptance scenario (issue 24), Effect 3 line:
 * `npm run scenario:cdc` at the repository root (writes CDC-SCENARIO.md there).
 * Options after `--`: `--rows N` (default 1 000 000), `--changes N` (10 000),
 * `--chunk N` (5 000). Take the cluster lock on a shared machine.
 *
 * The parent starts a source server (wal_level logical) and a target server
 * from this line's `testing/PgCluster`, then runs the two CDC workers
 * (`bench/cdcScenarioWorker.ts`, bundled, on plain Node); the workload, the fault, the comparison and the report are the
 * shared ones in `packages/core/bench/cdcScenario.ts`.
 */
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import { runMain } from "./main.js"
import * as Scenario from "../../core/bench/cdcScenario.js"
import * as PgCluster from "#lib/testing/PgCluster.js"

const script = fileURLToPath(import.meta.url)
const t0 = performance.now()
const log = (message: string) =>
  process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(4)}s] ${message}\n`)

const main = (plan: Scenario.Plan) =>
  Effect.gen(function*() {
    log("starting the source (wal_level logical) and the target server")
    const source = yield* PgCluster.make({ replicas: 0, walLevel: "logical" })
    const target = yield* PgCluster.make({ replicas: 0 })
    const dir = yield* Effect.acquireRelease(
      Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "cdc-scenario-"))),
      (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
    )
    const worker = yield* Effect.acquireRelease(
      Effect.sync(() => Scenario.bundleWorker(Path.join(Path.dirname(script), "cdcScenarioWorker.ts"))),
      (bundle) => Effect.sync(bundle.dispose)
    )
    const result = yield* Effect.promise(() =>
      Scenario.run({
        line: "Effect 3 line",
        sourceUrl: Redacted.value(source.primary.url),
        targetUrl: Redacted.value(target.primary.url),
        sqlitePath: Path.join(dir, "target.db"),
        spawnWorker: (env) =>
          ChildProcess.spawn(process.execPath, [worker.file], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] }),
        log
      }, plan)
    )
    const markdown = Scenario.render(result)
    const out = Path.resolve(process.cwd(), plan.out ?? "CDC-SCENARIO.md")
    Fs.writeFileSync(out, markdown)
    process.stdout.write(markdown)
    log(`wrote ${out}`)
    if (!Scenario.passed(result)) process.exitCode = 1
  }).pipe(Effect.scoped)

runMain({
  parse: () => Scenario.parseArgs(process.argv.slice(2)),
  program: main,
  log,
  shutsDown: "workers, servers",
  startedAt: t0
})
