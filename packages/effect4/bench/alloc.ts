/**
 * Where a statement allocates in this line: samples every allocation
 * (including objects the GC already collected) while 32 callers run
 * `SELECT 1` through the routed client on the bench cluster, and prints the
 * allocation sites by bytes per statement. Unlike the Effect 3 line's
 * `bench/alloc.ts`, the servers are real (`@effect/sql-pg` 4's driver has no
 * pool to stand in for): compare a mode with `--pgclient`, `@effect/sql-pg`
 * 4's own client on the primary, to see what the router adds.
 *
 *   npx tsx --conditions=effect-sql-router-dist bench/alloc.ts [--pgclient|--withread|--write|--primary-read] [--multiplex]
 *
 * `--primary-read` runs the reads on the primary (a router with no
 * replicas), the path that catches a severed statement.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as SqlClient from "effect/sql/SqlClient"
import * as RoutedClient from "#lib/RoutedClient.js"
import * as SqlRouter from "#lib/SqlRouter.js"
import * as Allocations from "../../core/bench/allocations.js"
import { statements } from "../../core/bench/workload.js"
import * as BenchCluster from "./cluster.js"
import { routerConfig } from "./systems.js"

const flag = (name: string) => process.argv.includes(name)

const program = Effect.gen(function*() {
  const bench = yield* BenchCluster.make({ replicas: 2 })
  const pool = flag("--multiplex") ? { multiplex: true } : undefined
  if (flag("--pgclient") && flag("--withread")) return yield* Effect.die("--withread needs the router, not --pgclient")
  type Services = SqlClient.SqlClient | SqlRouter.SqlRouter
  const layer = (flag("--pgclient")
    ? PgClient.layer({ url: bench.primary.url, maxConnections: bench.poolSize, idleTimeout: "1 hour", ...(pool ?? {}) })
    : RoutedClient.layer(routerConfig(bench, pool, { primaryOnly: flag("--primary-read") }))) as Layer.Layer<
      Services,
      unknown
    >
  const runtime = ManagedRuntime.make(layer)
  yield* Effect.addFinalizer(() => Effect.promise(() => runtime.dispose()))
  const sql = yield* Effect.promise(() => runtime.runPromise(SqlClient.SqlClient))
  const select1 = sql.unsafe(statements.select1)
  const op = flag("--withread")
    ? () => runtime.runPromise(SqlRouter.withRead(select1))
    : flag("--write")
    ? () => runtime.runPromise(sql.unsafe(statements.write, [1]))
    : () => runtime.runPromise(select1)
  process.stdout.write(yield* Effect.promise(() => Allocations.profile(op, Number(process.env.TOP ?? 40))))
}).pipe(Effect.scoped)

Effect.runPromise(program).then(() => process.exit(0), (e) => {
  console.error(e)
  process.exit(1)
})
