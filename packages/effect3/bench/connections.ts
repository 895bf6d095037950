/**
 * Server connections per node per app instance (from pg_stat_activity), idle
 * and under a load below the pool size, for N router instances in one
 * process (each a router of its own, as separate app processes would be).
 *
 *   flock /tmp/pg-heavy.lock npx tsx bench/connections.ts
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as RoutedClient from "#lib/RoutedClient.js"
import * as PgCluster from "#lib/testing/PgCluster.js"

const app = "conn-bench"

const countConnections = (cluster: PgCluster.PgCluster) =>
  Effect.forEach(cluster.nodes, (node) =>
    Effect.map(
      cluster.query<{ n: number }>(
        node,
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE '${app}%'`
      ),
      (rows) => [node.name, rows[0]!.n] as const
    ))

const run = (instances: number) =>
  Effect.gen(function*() {
    const cluster = yield* PgCluster.make({ replicas: 2 })
    const clients = yield* Effect.forEach(Array.from({ length: instances }), () =>
      Effect.map(
        RoutedClient.make({
          primary: cluster.primary.url,
          replicas: cluster.replicas.map((r) => r.url),
          applicationName: app,
          primaryMaxSize: 4,
          replicaMaxSizeEach: 4,
          health: { interval: "1 second" }
        }),
        (made) => made.client
      ))
    yield* Effect.sleep("3 seconds")
    const idle = yield* countConnections(cluster)
    // Load: per instance 3 readers per replica and 2 writers, below the pool size.
    const loop = (sql: SqlClient.SqlClient, write: boolean) =>
      Effect.forever(write ? sql`SELECT pg_sleep(0.002) FROM (SELECT nextval('s')) x` : sql`SELECT pg_sleep(0.002)`)
    yield* cluster.query(cluster.primary, "CREATE SEQUENCE IF NOT EXISTS s")
    const fibers = yield* Effect.forEach(clients, (sql) =>
      Effect.forkScoped(Effect.all([...Array(6).fill(loop(sql, false)), loop(sql, true), loop(sql, true)], {
        concurrency: "unbounded"
      })))
    yield* Effect.sleep("3 seconds")
    const busy = yield* countConnections(cluster)
    void fibers
    const per = (rows: ReadonlyArray<readonly [string, number]>) =>
      rows.map(([name, n]) => `${name} ${(n / instances).toFixed(1)}`).join(", ")
    console.log(`instances=${instances}`)
    console.log(`  idle: connections per node per instance: ${per(idle)}`)
    console.log(`  busy: connections per node per instance: ${per(busy)}`)
  }).pipe(Effect.scoped)

const counts = (process.argv[2] ?? "1,4").split(",").map(Number)
Effect.runPromise(Effect.forEach(counts, (n) => run(n), { discard: true }) as Effect.Effect<void, unknown>).then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
