import { describe, expect, layer } from "@effect/vitest"
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as CausalToken from "effect-sql-router/CausalToken"
import * as Consistency from "effect-sql-router/Consistency"
import * as RoutedClient from "effect-sql-router/RoutedClient"
import type * as RouterConfig from "effect-sql-router/RouterConfig"
import * as SqlRouter from "effect-sql-router/SqlRouter"
import { PgCluster } from "effect-sql-router/testing"
import { configFor, waitFor } from "./utils.js"

const secret = Redacted.make("a-shared-secret-of-32-characters!")

const routerConfig = (cluster: PgCluster.PgCluster, extra: Partial<RouterConfig.RouterConfig> = {}) =>
  configFor(cluster, {
    health: { interval: "200 millis", timeout: "500 millis" },
    // These tests write right after the setup's CREATE TABLE and expect reads
    // outside a session to be stale: no read-your-writes window after DDL.
    consistency: { tokenSecret: secret, afterSchemaChange: 0 },
    ...extra
  })

const Routed = Layer.unwrapScoped(
  Effect.map(PgCluster.PgCluster, (cluster) => RoutedClient.layer(routerConfig(cluster)))
).pipe(Layer.provideMerge(PgCluster.layer({ replicas: 2 })))

/** The row with this label (0 or 1 of it) and the server that answered. */
const readBack = (label: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ n: number; node: string }>`
        SELECT count(*)::int AS n, current_setting('cluster_name') AS node FROM notes WHERE label = ${label}`,
      (rows) => rows[0]!
    ))

const insert = (label: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql`INSERT INTO notes (label) VALUES (${label})`)

const pauseAll = Effect.flatMap(PgCluster.PgCluster, (c) => Effect.forEach(c.replicas, c.pauseReplay))
const resumeAll = Effect.flatMap(PgCluster.PgCluster, (c) =>
  Effect.zipRight(Effect.forEach(c.replicas, c.resumeReplay), c.awaitReplication()))

/** With every replica paused, runs `body` and resumes them whatever happens. */
const whilePaused = <A, E, R>(body: Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(pauseAll, () => body, () => Effect.orDie(resumeAll))

layer(Routed, { timeout: "120 seconds", excludeTestServices: true })("Consistency", (it) => {
  it.effect("setup", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`CREATE TABLE notes (id serial PRIMARY KEY, label text NOT NULL)`
      yield* Effect.flatMap(PgCluster.PgCluster, (c) => c.awaitReplication())
      // A read lowers the DDL barrier now that the replicas have replayed the
      // CREATE (once it asks them: at most one read per few milliseconds does);
      // otherwise writes in the next second would move it (and the stale reads
      // these tests expect outside sessions would go to the primary).
      const stats = yield* waitFor(
        Effect.andThen(sql`SELECT 1`, SqlRouter.stats),
        (stats) => stats.schemaBarrier === undefined
      )
      expect(stats.schemaBarrier).toBeUndefined()
    }))

  describe("causal sessions", () => {
    it.effect("with replay paused everywhere, a session reads its own write; outside a session the read is stale", () =>
      whilePaused(Effect.gen(function*() {
        const inSession = yield* SqlRouter.session(Effect.zipRight(insert("s1"), readBack("s1")))
        expect(inSession).toEqual({ n: 1, node: "primary" })
        // No session: a replica answers, and it has not replayed the insert.
        const stale = yield* readBack("s1")
        expect(stale.node).toMatch(/^replica-/)
        expect(stale.n).toBe(0)
      })))

    it.effect("the session's position comes from transactions, autocommit writes and withWrite regions alike", () =>
      whilePaused(Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const viaTransaction = yield* SqlRouter.session(
          Effect.zipRight(sql.withTransaction(insert("tx")), readBack("tx"))
        )
        expect(viaTransaction).toEqual({ n: 1, node: "primary" })
        const viaRouterTransaction = yield* SqlRouter.session(
          Effect.zipRight(SqlRouter.transaction(insert("rtx")), readBack("rtx"))
        )
        expect(viaRouterTransaction).toEqual({ n: 1, node: "primary" })
        const viaRegion = yield* SqlRouter.session(
          Effect.zipRight(SqlRouter.withWrite(insert("region")), SqlRouter.withRead(readBack("region")))
        )
        expect(viaRegion).toEqual({ n: 1, node: "primary" })
        // A session that has not written reads from replicas.
        expect((yield* SqlRouter.session(readBack("none"))).node).toMatch(/^replica-/)
      })))

    it.effect("a read waiting within maxWait is served by a replica once it replays the write", () =>
      Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* pauseAll
        const result = yield* SqlRouter.session(Effect.gen(function*() {
          yield* insert("waited")
          const reader = yield* Effect.fork(
            readBack("waited").pipe(Consistency.withReadPolicy({ maxWait: "20 seconds", onNotCaughtUp: "fail" }))
          )
          yield* cluster.resumeReplay(cluster.replicas[1]!)
          return yield* Fiber.join(reader)
        }))
        expect(result).toEqual({ n: 1, node: "replica-1" })
        yield* resumeAll
      }))

    it.effect("with the fail policy and nobody caught up, the read fails with ReplicaNotCaughtUp", () =>
      whilePaused(Effect.gen(function*() {
        const policy = Consistency.withReadPolicy({ maxWait: "100 millis", onNotCaughtUp: "fail" })
        // A routed statement fails as a statement does, with the reason inside.
        const error = yield* SqlRouter.session(Effect.zipRight(
          insert("fails"),
          readBack("fails").pipe(policy, Effect.flip)
        ))
        expect(error._tag).toBe("SqlError")
        expect(JSON.stringify(error.cause)).toContain("ReplicaNotCaughtUp")
        const region = yield* SqlRouter.session(Effect.zipRight(
          insert("fails-1"),
          SqlRouter.withRead(readBack("fails-1")).pipe(policy, Effect.flip)
        ))
        expect(region._tag).toBe("ReplicaNotCaughtUp")
        const direct = yield* SqlRouter.session(Effect.zipRight(
          insert("fails-2"),
          SqlRouter.withReplica(Effect.void).pipe(
            Consistency.withReadPolicy({ maxWait: 0, onNotCaughtUp: "fail" }),
            Effect.flip
          )
        ))
        expect(direct._tag).toBe("ReplicaNotCaughtUp")
      })))
  })

  describe("causal tokens", () => {
    it.effect("a token from one router gives the same guarantee in another (as in a second process)", () =>
      Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        const token = yield* whilePaused(Effect.gen(function*() {
          const token = yield* SqlRouter.session(Effect.zipRight(insert("crossed"), Consistency.currentToken))
          expect(token.length).toBeLessThan(80)
          const other = yield* RoutedClient.make(routerConfig(cluster))
          const seen = yield* readBack("crossed").pipe(
            Consistency.withToken(token),
            Effect.provideService(SqlClient.SqlClient, other.client),
            Effect.provideService(SqlRouter.SqlRouter, other.router)
          )
          expect(seen).toEqual({ n: 1, node: "primary" })
          const state = yield* CausalToken.decode(token).pipe(Effect.provideService(SqlRouter.SqlRouter, other.router))
          expect(state.lsn).toBeGreaterThan(0n)
          return token
        }))
        expect(token.startsWith("v1.")).toBe(true)
      }).pipe(Effect.scoped))

    it.effect("a tampered, foreign-key or malformed token is rejected, never used", () =>
      Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        const token = yield* SqlRouter.session(Effect.zipRight(insert("t"), Consistency.currentToken))
        const [version, lsn, system, mac] = token.split(".") as [string, string, string, string]
        const biggerLsn = `${version}.${(BigInt(`0x${lsn}`) + 1n).toString(16)}.${system}.${mac}`
        const flippedMac = `${version}.${lsn}.${system}.${mac.startsWith("A") ? "B" : "A"}${mac.slice(1)}`
        for (const bad of [biggerLsn, flippedMac, "v1.zz.1.abc", "garbage", ""]) {
          const error = yield* Effect.flip(CausalToken.decode(bad))
          expect(error._tag).toBe("InvalidToken")
        }
        const stranger = yield* RoutedClient.make(
          routerConfig(cluster, { consistency: { tokenSecret: Redacted.make("another-secret-of-32-characters!!") } })
        )
        const foreign = yield* Effect.flip(
          CausalToken.decode(token).pipe(Effect.provideService(SqlRouter.SqlRouter, stranger.router))
        )
        expect(foreign.message).toContain("bad signature")
      }).pipe(Effect.scoped))
  })

  describe("bounded staleness", () => {
    it.effect("withMaxStaleness excludes a replica whose replay is paused once its lag exceeds the bound", () =>
      Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* cluster.pauseReplay(cluster.replicas[0]!)
        yield* insert("lagging")
        yield* SqlRouter.replicaStatus.pipe(
          Effect.repeat({
            until: (all) => (all.find((s) => s.id === "replica-0")?.lagMillis ?? 0) > 300,
            schedule: Schedule.spaced("20 millis")
          }),
          Effect.timeout("20 seconds")
        )
        const bounded = yield* Effect.forEach([1, 2, 3, 4, 5, 6], () => readBack("lagging")).pipe(
          SqlRouter.withMaxStaleness("300 millis")
        )
        expect(bounded.map((r) => r.node)).not.toContain("replica-0")
        expect(bounded.every((r) => r.n === 1)).toBe(true)
        const unbounded = yield* Effect.forEach([1, 2, 3, 4], () => readBack("lagging"))
        expect(unbounded.map((r) => r.node)).toContain("replica-0")
        yield* cluster.resumeReplay(cluster.replicas[0]!)
        yield* cluster.awaitReplication()
      }))
  })

  describe("sticky primary", () => {
    it.effect("stickyPrimaryAfterWrite sends a session's reads to the primary for a while after its write", () =>
      Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        const sticky = yield* RoutedClient.make(
          routerConfig(cluster, { consistency: { stickyPrimaryAfterWrite: "3 seconds", tokenSecret: secret } })
        )
        const provide = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
          effect.pipe(
            Effect.provideService(SqlClient.SqlClient, sticky.client),
            Effect.provideService(SqlRouter.SqlRouter, sticky.router)
          )
        const [first, later] = yield* provide(SqlRouter.session(Effect.gen(function*() {
          expect((yield* readBack("sticky")).node).toMatch(/^replica-/) // no write yet
          yield* insert("sticky")
          const first = yield* readBack("sticky")
          // After the window the session reads from replicas again.
          const later = yield* readBack("sticky").pipe(
            Effect.repeat({ until: (r) => r.node !== "primary", schedule: Schedule.spaced("100 millis") }),
            Effect.zipRight(readBack("sticky")),
            Effect.timeout("20 seconds")
          )
          return [first, later] as const
        })))
        expect(first).toEqual({ n: 1, node: "primary" })
        expect(later.node).toMatch(/^replica-/)
      }).pipe(Effect.scoped))
  })

  describe("HTTP middleware", () => {
    it.effect("carries the session in a request header and returns the updated token", () =>
      whilePaused(Effect.gen(function*() {
        const app = Effect.gen(function*() {
          const request = yield* HttpServerRequest.HttpServerRequest
          if (request.method === "POST") {
            yield* insert("http")
            return HttpServerResponse.text("created", { status: 201 })
          }
          return yield* HttpServerResponse.json(yield* readBack("http"))
        })
        const runtime = yield* Effect.runtime<SqlRouter.SqlRouter | SqlClient.SqlClient>()
        const handler = HttpApp.toWebHandlerRuntime(runtime)(Consistency.middleware()(app) as never)
        const created = yield* Effect.promise(() => handler(new Request("http://test/notes", { method: "POST" })))
        expect(created.status).toBe(201)
        const token = created.headers.get("x-causal-token")
        expect(token).toMatch(/^v1\./)
        const read = yield* Effect.promise(() =>
          handler(new Request("http://test/notes", { headers: { "x-causal-token": token! } })))
        expect(yield* Effect.promise(() => read.json())).toEqual({ n: 1, node: "primary" })
        expect(read.headers.get("x-causal-token")).toBe(token)
        const withoutToken = yield* Effect.promise(() => handler(new Request("http://test/notes")))
        expect(((yield* Effect.promise(() => withoutToken.json())) as { node: string }).node).toMatch(/^replica-/)
        const forged = yield* Effect.promise(() =>
          handler(new Request("http://test/notes", { headers: { "x-causal-token": token!.slice(0, -2) + "xx" } })))
        expect(forged.status).toBe(400)
        const body = (yield* Effect.promise(() => forged.json())) as { error: string; message: string }
        expect(body.error).toBe("InvalidToken")
        expect(body.message).toContain("Invalid causal token")
      })))
  })
})
