/**
 * Where a routed statement allocates: samples every allocation (including
 * objects the GC already collected) while routed `SELECT 1` statements run on
 * pools whose queries answer on the next turn of the event loop, then prints
 * the allocation sites by bytes per query. `npx tsx --conditions=effect-sql-router-dist bench/alloc.ts [--floor|--withread|--write]`
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as RoutedClient from "#lib/RoutedClient.js"
import * as SqlRouter from "#lib/SqlRouter.js"
import * as Allocations from "../../core/bench/allocations.js"
import * as BenchCluster from "./cluster.js"
import { fake } from "./fakePool.js"
import { routerConfig } from "./systems.js"

const program = Effect.gen(function*() {
  const bench = yield* BenchCluster.make({ replicas: 2 })
  const runtime = ManagedRuntime.make(
    RoutedClient.layer(routerConfig(bench, bench.replicas, {})) as Layer.Layer<SqlClient.SqlClient | SqlRouter.SqlRouter>
  )
  yield* Effect.addFinalizer(() => Effect.promise(() => runtime.dispose()))
  const sql = yield* Effect.promise(() => runtime.runPromise(SqlClient.SqlClient))
  const router = yield* Effect.promise(() => runtime.runPromise(SqlRouter.SqlRouter))
  const nodes = [yield* router.primary, ...(yield* router.replicas)]
  for (const node of nodes) fake(node.pool)
  const pool = nodes[0]!.pool
  const floor = Effect.async<unknown>((resume) => {
    pool.connect((_e, client, release) => client!.query("SELECT 1", [], (_err: unknown, r: unknown) => { release(); resume(Effect.succeed(r)) }))
  })
  const select1 = Effect.flatMap(SqlClient.SqlClient, (s) => s`SELECT 1`)
  const op = process.argv.includes("--floor")
    ? () => runtime.runPromise(floor)
    : process.argv.includes("--withread")
    ? () => runtime.runPromise(router.withRead(select1))
    : process.argv.includes("--write")
    ? () => runtime.runPromise(sql`UPDATE t SET v = 1`)
    : () => runtime.runPromise(sql`SELECT 1`)
  const report = yield* Effect.promise(() => Allocations.profile(op, Number(process.env.TOP ?? 40)))
  process.stdout.write(report)
}).pipe(Effect.scoped)

Effect.runPromise(program).then(() => process.exit(0), (e) => { console.error(e); process.exit(1) })
