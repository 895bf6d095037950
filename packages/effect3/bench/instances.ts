/**
 * Many app instances, one cluster (issue 23): `npm run bench:instances` at the
 * repository root (writes INSTANCES.md there), `-- --quick` for a smoke run.
 * Take the cluster lock: `flock /work/wt/cluster.lock npm run bench:instances`.
 *
 * The parent starts a primary and 2 streaming replicas from this line's
 * `testing/PgCluster`, then forks itself as child processes, each holding some
 * of the R router instances (a full `SqlRouter` layer each); the sampling, the
 * load and the report are the shared ones in `packages/core/bench/instances.ts`.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Redacted from "effect/Redacted"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import * as Host from "../../core/bench/host.js"
import { runMain } from "./main.js"
import * as Instances from "../../core/bench/instances.js"
import * as SqlRouter from "#lib/SqlRouter.js"
import * as PgCluster from "#lib/testing/PgCluster.js"

const script = fileURLToPath(import.meta.url)

const t0 = performance.now()
const log = (message: string) =>
  process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(4)}s] ${message}\n`)

/** One router instance: its layer with the default configuration but the URLs and `idleTimeout`. */
const makeInstance = async (options: Instances.InstanceOptions): Promise<Instances.Instance> => {
  const runtime = ManagedRuntime.make(SqlRouter.layer({
    primary: Redacted.make(options.primary),
    replicas: options.replicas.map((url) => Redacted.make(url)),
    idleTimeout: Duration.millis(options.idleTimeoutMs)
  }))
  try {
    const router = await runtime.runPromise(SqlRouter.SqlRouter)
    // Rejects with the typed error itself (not a FiberFailure), so the report can follow its causes.
    const run = <A, E>(effect: Effect.Effect<A, E>) =>
      runtime.runPromise(Effect.either(effect)).then((result) =>
        result._tag === "Right" ? result.right : Promise.reject(result.left)
      )
    return {
      read: (k) => run(router.withRead(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT v FROM bench_kv WHERE k = ${k}`))),
      write: (k) =>
        run(router.withWrite(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`UPDATE bench_kv SET v = v + 1 WHERE k = ${k}`))),
      close: () => runtime.dispose()
    }
  } catch (error) {
    await runtime.dispose()
    throw error
  }
}

const main = (plan: Instances.Plan) =>
  Effect.gen(function*() {
    log("starting the cluster (primary + 2 replicas)")
    const cluster = yield* PgCluster.make({ replicas: 2, settings: Instances.serverSettings })
    for (const statement of Instances.setupStatements) yield* cluster.query(cluster.primary, statement)
    yield* cluster.awaitReplication()
    const [row] = yield* cluster.query<{ v: string }>(cluster.primary, "SELECT current_setting('server_version') AS v")
    const nodes = cluster.nodes.map((node): Instances.NodeInfo => ({
      name: node.name,
      role: node.role,
      url: Redacted.value(node.url)
    }))
    const results = yield* Effect.promise(() => Instances.runParent({ script, nodes, plan, log }))
    const versions = Host.libraryVersions(import.meta.url, ["effect", "@effect/sql", "@effect/sql-pg", "pg"])
    const markdown = Instances.render({
      title: "Many app instances: load per PostgreSQL node (Effect 3 line)",
      command: `npm run bench:instances${plan.quick ? " -- --quick" : ""}`,
      plan,
      nodes,
      postgres: row?.v ?? "unknown",
      libraries: versions.map(([name, version]) => `${name} ${version}`).join(", "),
      results
    })
    const out = Path.resolve(process.cwd(), plan.out)
    Fs.writeFileSync(out, markdown + "\n")
    process.stdout.write(markdown + "\n")
    log(`wrote ${out}`)
  }).pipe(Effect.scoped)

if (Instances.isChild()) {
  Instances.runChild(makeInstance)
} else {
  runMain({
    parse: () => Instances.parseArgs(process.argv.slice(2), "INSTANCES.md"),
    program: main,
    log,
    shutsDown: "children, servers",
    startedAt: t0
  })
}
