import { expect, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Reactivity from "effect/reactivity/Reactivity"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as SqlClient from "effect/sql/SqlClient"
import * as Stream from "effect/Stream"
import * as Cdc from "@effect-sql-router/effect4/Cdc"
import * as Durable from "@effect-sql-router/effect4/Durable"
import type * as RouterConfig from "@effect-sql-router/effect4/RouterConfig"
import * as SqlRouter from "@effect-sql-router/effect4/SqlRouter"
import { PgCluster } from "@effect-sql-router/effect4/testing"

// `direct` URLs (issue 23): behind a transaction-mode pooler, LISTEN and CDC
// need the server itself. Here the pooled URL and the direct URL reach the
// same server as two different users, so pg_stat_activity shows which URL
// each connection came through: `postgres` (the pooled URL) or `direct_user`.

const directUser = "direct_user"

const ensureDirectUser = (cluster: PgCluster.PgCluster) =>
  cluster.query(
    cluster.primary,
    `DO $$ BEGIN
       IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${directUser}') THEN
         CREATE ROLE ${directUser} LOGIN SUPERUSER REPLICATION;
       END IF;
     END $$`
  )

const directUrl = (cluster: PgCluster.PgCluster) =>
  Redacted.make(`postgres://${directUser}@${cluster.primary.host}:${cluster.primary.port}/${cluster.primary.database}`)

/** The users of the primary's backends with this `application_name` (and `backend_type`), as the server reports them. */
const usersOf = (cluster: PgCluster.PgCluster, applicationName: string, backendType = "client backend", lastQuery = "") =>
  Effect.map(
    cluster.query<{ usename: string }>(
      cluster.primary,
      "SELECT usename FROM pg_stat_activity WHERE application_name = $1 AND backend_type = $2 AND starts_with(query, $3) ORDER BY usename",
      [applicationName, backendType, lastQuery]
    ),
    (rows) => rows.map((row) => row.usename)
  )

/** Polls until `predicate` holds, for at most 10 seconds, giving the value that held; the caller asserts on it. */
const awaitCondition = <A, E, R>(effect: Effect.Effect<A, E, R>, predicate: (a: A) => boolean) =>
  effect.pipe(
    Effect.flatMap((a) => predicate(a) ? Effect.succeed(a) : Effect.fail("not yet" as const)),
    Effect.retry(Schedule.spaced("50 millis")),
    Effect.timeoutOption("10 seconds"),
    // The value that held (a session can be gone by a second look, as the
    // walsender was in one CI run); on a timeout, a last look for the
    // caller's assertion to show.
    Effect.flatMap(Option.match({ onNone: () => effect, onSome: Effect.succeed }))
  )

const currentUser = Effect.flatMap(Effect.service(SqlClient.SqlClient), (sql) => sql<{ u: string }>`SELECT current_user AS u`)

const routerOn = (cluster: PgCluster.PgCluster, direct: boolean): RouterConfig.RouterConfig => ({
  primary: cluster.primary.url,
  ...(direct ? { direct: { primary: directUrl(cluster) } } : {})
})

layer(PgCluster.layer({ replicas: 0, walLevel: "logical" }), { timeout: "120 seconds", excludeTestServices: true })(
  "direct URLs",
  (it) => {
    it.effect("Durable's LISTEN connects through direct.primary; statements and NOTIFY keep the pooled URL", () =>
      Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* ensureDirectUser(cluster)
        for (const direct of [true, false]) {
          const applicationName = `direct-test-${direct}`
          yield* Effect.gen(function*() {
            const received = yield* Effect.forkChild(
              Stream.runHead(Stream.unwrap(Durable.notifications("direct_channel", { applicationName })))
            )
            // The session has run its LISTEN (its last statement): a NOTIFY now reaches it.
            const listeners = yield* awaitCondition(usersOf(cluster, applicationName, "client backend", "LISTEN"), (users) => users.length > 0)
            expect(listeners).toEqual([direct ? directUser : "postgres"])
            // The routed statement (the NOTIFY) runs on the pooled URL's connection.
            expect(yield* SqlRouter.withWrite(currentUser)).toEqual([{ u: "postgres" }])
            yield* SqlRouter.withWrite(
              Effect.flatMap(Effect.service(SqlClient.SqlClient), (sql) => sql`SELECT pg_notify('direct_channel', ${applicationName})`)
            )
            expect(yield* Fiber.join(received)).toEqual(Option.some(applicationName))
          }).pipe(Effect.provide(SqlRouter.layer(routerOn(cluster, direct))), Effect.scoped)
        }
      }))

    it.effect("CDC through the router (primaryFromRouter) replicates over direct.primary", () =>
      Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* ensureDirectUser(cluster)
        yield* cluster.query(cluster.primary, "CREATE TABLE direct_t (id int PRIMARY KEY, label text)")
        const applicationName = "direct-test-cdc"
        yield* Effect.gen(function*() {
          const primary = yield* Cdc.primaryFromRouter
          expect(Redacted.value(primary)).toBe(Redacted.value(directUrl(cluster)))
          const options: Cdc.StreamOptions = {
            primary,
            slot: "direct_slot",
            publication: "direct_pub",
            tables: ["direct_t"],
            applicationName
          }
          const insert = yield* Effect.forkChild(
            Cdc.changes(options).pipe(
              Stream.filter((change) => change._tag === "Insert"),
              Stream.take(1),
              Stream.runCollect
            )
          )
          const walSenders = yield* awaitCondition(
            usersOf(cluster, applicationName, "walsender"),
            // A backend still starting up shows no user yet (usename is NULL until it has authenticated).
            (users) => users.length > 0 && users.every((user) => user !== null)
          )
          expect(walSenders).toEqual([directUser])
          // The slot is created and streams: a change committed from now on is decoded (one committed
          // while the slot was still being created would come before its consistent point, and never).
          const streaming = yield* awaitCondition(
            cluster.query<{ n: number }>(
              cluster.primary,
              "SELECT count(*)::int AS n FROM pg_replication_slots WHERE slot_name = 'direct_slot' AND active"
            ),
            (rows) => rows[0]?.n === 1
          )
          expect(streaming).toEqual([{ n: 1 }])
          yield* SqlRouter.withWrite(
            Effect.flatMap(Effect.service(SqlClient.SqlClient), (sql) => sql`INSERT INTO direct_t VALUES (1, 'through the router')`)
          )
          const [change] = yield* Fiber.join(insert)
          expect(change?._tag === "Insert" && change.row).toEqual({ id: 1, label: "through the router" })
          yield* Cdc.drop({ primary, slot: "direct_slot", publication: "direct_pub" })
        }).pipe(
          Effect.provide(SqlRouter.layer(routerOn(cluster, true))),
          Effect.provide(Reactivity.layer),
          Effect.scoped
        )
      }))
  }
)
