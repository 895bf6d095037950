/**
 * Quick start (Effect 4): an existing `effect/sql` program on a primary and its replicas.
 *
 *   DATABASE_URL=postgres://app:secret@primary/app \
 *   DATABASE_REPLICA_URLS=postgres://app:secret@replica-1/app,postgres://app:secret@replica-2/app \
 *   npx tsx examples/quickstart.ts
 *
 * Without `DATABASE_URL` it starts a throwaway embedded primary + 2 replicas.
 */
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as SqlClient from "effect/sql/SqlClient"
import { pathToFileURL } from "node:url"
import { RouterConfig, SqlRouter } from "@effect-sql-router/effect4"
import { PgCluster } from "@effect-sql-router/effect4/testing"

const schema = "CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, body text NOT NULL)"

/** The app: plain `effect/sql`. The router decides where each statement runs. */
export const program = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient

  // A write: the primary.
  const [note] = yield* sql<{ id: number }>`INSERT INTO notes (body) VALUES ('hello, replicas') RETURNING id`

  // A replica may not have replayed that INSERT yet: read your own write on the primary.
  const [mine] = yield* SqlRouter.primary(sql<{ body: string }>`SELECT body FROM notes WHERE id = ${note!.id}`)

  // Plain reads go to a replica (pg_is_in_recovery() is true on a standby).
  const [listing] = yield* sql<{ notes: number; on_replica: boolean }>`
    SELECT count(*)::int AS notes, pg_is_in_recovery() AS on_replica FROM notes`

  // Reads that belong together run on one replica: take its client from the region.
  const page = yield* SqlRouter.withRead(Effect.gen(function*() {
    const replica = yield* SqlClient.SqlClient
    const rows = yield* replica<{ id: number; body: string }>`SELECT id, body FROM notes ORDER BY id DESC LIMIT 10`
    const [total] = yield* replica<{ n: number }>`SELECT count(*)::int AS n FROM notes`
    return { rows, total: total!.n }
  }))

  // A transaction: BEGIN … COMMIT on one primary connection, so its reads see its writes.
  const shouted = yield* SqlRouter.transaction(Effect.gen(function*() {
    yield* sql`UPDATE notes SET body = upper(body) WHERE id = ${note!.id}`
    const [row] = yield* sql<{ body: string }>`SELECT body FROM notes WHERE id = ${note!.id}`
    return row!.body
  }))

  // What went where: statements per node, by intent, and pool use.
  const stats = yield* SqlRouter.stats
  return { readBack: mine!.body, listing: listing!, page, shouted, stats }
})

/**
 * The router, its routed `SqlClient` and `PgClient`. The configuration comes
 * from the environment (URLs stay `Redacted`); without it, from a local cluster.
 */
export const DatabaseLive = Layer.unwrap(Effect.gen(function*() {
  const url = yield* Config.option(Config.Redacted("DATABASE_URL"))
  if (Option.isSome(url)) return SqlRouter.layerClientConfig(RouterConfig.fromEnv) // expects the notes table
  const cluster = yield* PgCluster.make({ replicas: 2 })
  // Stands in for migrations run before the app starts: the replicas have the table.
  yield* cluster.query(cluster.primary, schema)
  yield* cluster.awaitReplication()
  return SqlRouter.layerClient({
    primary: cluster.primary.url,
    replicas: cluster.replicas.map((node) => node.url),
    // Statements of many fibers share each replica session, pipelined.
    replicaPool: { multiplex: true }
  })
}))

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  Effect.runPromise(Effect.provide(program, DatabaseLive)).then(
    ({ listing, page, readBack, shouted, stats }) => {
      console.log(`read back on the primary: ${readBack}`)
      console.log(`plain read: ${listing.notes} notes, answered by a ${listing.on_replica ? "replica" : "primary"}`)
      console.log(`withRead page: ${page.rows.length} of ${page.total} notes; transaction wrote "${shouted}"`)
      for (const node of [stats.primary, ...stats.replicas]) {
        console.log(`  ${node.id.padEnd(10)} reads ${node.served.reads}  writes ${node.served.writes}`)
      }
    },
    (error) => {
      console.error(String(error))
      process.exitCode = 1
    }
  )
}
