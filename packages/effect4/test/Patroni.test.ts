import { describe, expect, it, layer } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as SqlClient from "effect/sql/SqlClient"
import * as Http from "node:http"
import * as RoutedClient from "@effect-sql-router/effect4/RoutedClient"
import * as RouterConfig from "@effect-sql-router/effect4/RouterConfig"
import * as SqlRouter from "@effect-sql-router/effect4/SqlRouter"
import { PgCluster } from "@effect-sql-router/effect4/testing"
import { eventually, whoAmI } from "./utils.js"

// Patroni as the source of truth, against a real cluster: a small HTTP server
// answers `GET /cluster` as Patroni documents it, about the cluster's real
// nodes; what the router does is observed on the servers (which one takes a
// write, which one serves a read, how many probe statements reach a replica).

/** A stand-in for Patroni's REST API: `GET /cluster` answers what the test sets. */
interface FakePatroni {
  readonly port: number
  set: (cluster: unknown) => void
  /** Silent: every connection is dropped unanswered, as if no member were reachable. */
  silence: (silent: boolean) => void
  readonly requests: () => number
  readonly authorizations: ReadonlyArray<string | undefined>
}

const fakePatroni: Effect.Effect<FakePatroni, never, Scope.Scope> = Effect.acquireRelease(
  Effect.callback<{ fake: FakePatroni; server: Http.Server }>((resume) => {
    let body: unknown = { members: [] }
    let silent = false
    let requests = 0
    const authorizations: Array<string | undefined> = []
    const server = Http.createServer((request, response) => {
      requests++
      authorizations.push(request.headers.authorization)
      if (silent) return request.socket.destroy()
      if (request.method !== "GET" || request.url !== "/cluster") {
        response.writeHead(404).end()
        return
      }
      response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body))
    })
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port
      resume(Effect.succeed({
        server,
        fake: {
          port,
          set: (cluster) => {
            body = cluster
          },
          silence: (on) => {
            silent = on
          },
          requests: () => requests,
          authorizations
        }
      }))
    })
  }),
  ({ server }) =>
    Effect.callback<void>((resume) => {
      server.closeAllConnections()
      server.close(() => resume(Effect.void))
    })
).pipe(Effect.map(({ fake }) => fake))

/** A member as `GET /cluster` lists it. */
const member = (node: PgCluster.ClusterNode, role: string, state: string, lag?: number) => ({
  name: node.name,
  role,
  state,
  api_url: `http://${node.host}:8008/patroni`,
  host: node.host,
  port: node.port,
  timeline: 1,
  ...(lag === undefined ? {} : { lag, lsn: "0/3000060", replay_lag: lag, replay_lsn: "0/3000060" })
})

/** Patroni's answer: `leader` leads, every other node streams with lag 0 unless `others` says otherwise. */
const answer = (
  cluster: PgCluster.PgCluster,
  leader: PgCluster.ClusterNode,
  others: Record<string, { readonly state?: string; readonly lag?: number | undefined }> = {}
) => ({
  scope: "test",
  members: cluster.nodes.map((node) => {
    if (node === leader) return member(node, "leader", "running")
    const other = others[node.name] ?? {}
    // An explicit `lag: undefined`: a member Patroni gives no position for.
    return member(node, "replica", other.state ?? "streaming", "lag" in other ? other.lag : 0)
  })
})

const secret = "s3cret-patroni-pass"

const configFor = (cluster: PgCluster.PgCluster, fake: FakePatroni): RouterConfig.RouterConfig => ({
  discovery: "auto",
  hosts: cluster.nodes.map((node) => node.url),
  connectTimeout: "1 second",
  // A fixed cadence (no calm backoff): `rounds` counts health intervals.
  health: { interval: "150 millis", maxInterval: "150 millis", timeout: "1 second" },
  patroni: { urls: [Redacted.make(`http://watcher:${secret}@127.0.0.1:${fake.port}`)], timeout: "500 millis" }
})

/**
 * Statements that watch a server and reached it: the replica probe's
 * `Catalog.standbyState`, and discovery's `Catalog.role` (which the router
 * asks every host while Patroni does not answer for them).
 */
const probesOn = (cluster: PgCluster.PgCluster, node: PgCluster.ClusterNode) =>
  Effect.map(
    cluster.query<{ n: number }>(
      node,
      `SELECT coalesce(sum(calls), 0)::int AS n FROM pg_stat_statements
       WHERE (query LIKE '%pg_last_xact_replay_timestamp%' OR query LIKE '%pg_walfile_name%')
         AND query NOT LIKE '%pg_stat_statements%'`
    ),
    (rows) => rows[0]!.n
  )

const probesOnReplicas = (cluster: PgCluster.PgCluster) =>
  Effect.map(Effect.forEach(cluster.replicas, (node) => probesOn(cluster, node)), (ns) => ns.reduce((a, b) => a + b, 0))

/** The router and routed client, Patroni's answer set first. */
const start = (cluster: PgCluster.PgCluster, fake: FakePatroni) =>
  Effect.gen(function*() {
    fake.set(answer(cluster, cluster.primary))
    return yield* RoutedClient.make(configFor(cluster, fake))
  })

/** Waits until Patroni has been asked `n` more times: that many health intervals have passed. */
const rounds = (fake: FakePatroni, n: number) => {
  const target = fake.requests() + n
  return eventually(Effect.sync(() => fake.requests() >= target), 200)
}

const status = (router: SqlRouter.SqlRouter, id: string) =>
  Effect.map(router.replicaStatus, (all) => all.find((s) => s.id === id)!)

/** Log lines the router writes, for assertions. */
const capturedLogs = () => {
  const lines: Array<string> = []
  const logger = Logger.make(({ message }) => {
    lines.push(Array.isArray(message) ? message.join(" ") : String(message))
  })
  return {
    lines,
    around: <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.provideService(effect, Logger.CurrentLoggers, new Set([logger]))
  }
}

const Cluster = PgCluster.layer({ replicas: 2, settings: { shared_preload_libraries: "pg_stat_statements" } })

layer(Cluster, { timeout: "180 seconds", excludeTestServices: true })("Patroni as the source of truth", (it) => {
  it.effect("setup: pg_stat_statements counts the probes on every server", () =>
    Effect.gen(function*() {
      const cluster = yield* PgCluster.PgCluster
      yield* cluster.query(cluster.primary, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
      yield* cluster.awaitReplication()
      const installed = yield* Effect.forEach(cluster.replicas, (node) =>
        cluster.query<{ n: number }>(node, "SELECT count(*)::int AS n FROM pg_extension WHERE extname = 'pg_stat_statements'"))
      expect(installed.map((rows) => rows[0]!.n)).toEqual([1, 1])
    }))

  it.effect("the leader Patroni names takes the writes; replicas it reports streaming get no probe and its lag", () =>
    Effect.gen(function*() {
      const cluster = yield* PgCluster.PgCluster
      const fake = yield* fakePatroni
      const { client, router } = yield* start(cluster, fake)
      fake.set(answer(cluster, cluster.primary, { "replica-1": { lag: 4096 } }))
      const before = yield* probesOnReplicas(cluster)
      yield* rounds(fake, 6)
      expect(yield* SqlRouter.withWrite(whoAmI).pipe(
        Effect.provideService(SqlRouter.SqlRouter, router),
        Effect.provideService(SqlClient.SqlClient, client)
      )).toBe("primary")
      const reads = yield* Effect.forEach([1, 2, 3, 4], () =>
        SqlRouter.withRead(whoAmI).pipe(
          Effect.provideService(SqlRouter.SqlRouter, router),
          Effect.provideService(SqlClient.SqlClient, client)
        ))
      expect(new Set(reads)).toEqual(new Set(["replica-0", "replica-1"]))
      expect(yield* probesOnReplicas(cluster)).toBe(before)
      const lagged = yield* status(router, "node-2")
      expect([lagged.healthy, lagged.lagBytes, lagged.state]).toEqual([true, 4096, "Following"])
      // The URL's credentials travel as Basic authentication.
      expect(fake.authorizations.at(-1)).toBe(`Basic ${Buffer.from(`watcher:${secret}`).toString("base64")}`)
    }))

  it.effect("a member Patroni reports stopped leaves rotation, and returns when it streams again", () =>
    Effect.gen(function*() {
      const cluster = yield* PgCluster.PgCluster
      const fake = yield* fakePatroni
      const { client, router } = yield* start(cluster, fake)
      const read = SqlRouter.withRead(whoAmI).pipe(
        Effect.provideService(SqlRouter.SqlRouter, router),
        Effect.provideService(SqlClient.SqlClient, client)
      )
      fake.set(answer(cluster, cluster.primary, { "replica-0": { state: "stopped", lag: undefined } }))
      yield* eventually(Effect.map(status(router, "node-1"), (s) => !s.healthy), 200)
      expect((yield* status(router, "node-1")).lastError).toBe("Patroni reports it stopped")
      expect(yield* Effect.forEach([1, 2, 3, 4], () => read)).toEqual(["replica-1", "replica-1", "replica-1", "replica-1"])
      fake.set(answer(cluster, cluster.primary))
      yield* eventually(Effect.map(status(router, "node-1"), (s) => s.healthy), 200)
      expect(new Set(yield* Effect.forEach([1, 2, 3, 4], () => read))).toEqual(new Set(["replica-0", "replica-1"]))
    }))

  it.effect("Patroni unreachable: the PostgreSQL probes resume, said once, without the URL's credentials", () =>
    Effect.gen(function*() {
      const cluster = yield* PgCluster.PgCluster
      const fake = yield* fakePatroni
      const logs = capturedLogs()
      const { router } = yield* logs.around(start(cluster, fake))
      const before = yield* probesOnReplicas(cluster)
      fake.silence(true)
      yield* eventually(Effect.map(probesOnReplicas(cluster), (n) => n >= before + 4), 200)
      yield* rounds(fake, 3)
      expect(yield* Effect.map(router.replicaStatus, (all) => all.filter((s) => s.role === "replica").map((s) => s.healthy)))
        .toEqual([true, true])
      const silent = logs.lines.filter((line) => line.startsWith("no Patroni REST API answers"))
      expect(silent).toHaveLength(1)
      expect(silent[0]).toContain("patroni.urls[0] (127.0.0.1:")
      fake.silence(false)
      yield* eventually(Effect.sync(() => logs.lines.some((line) => line.startsWith("Patroni (patroni.urls[0]"))), 200)
      // Trusted again: no more probe statements on the replicas.
      yield* rounds(fake, 2)
      const settled = yield* probesOnReplicas(cluster)
      yield* rounds(fake, 5)
      expect(yield* probesOnReplicas(cluster)).toBe(settled)
      expect(logs.lines.join("\n")).not.toContain(secret)
    }))
})

describe("Patroni failover", () => {
  it.live("a leader change is followed, and Patroni's leader wins the split brain it leaves", () =>
    Effect.gen(function*() {
      const cluster = yield* PgCluster.make({ replicas: 2 })
      const fake = yield* fakePatroni
      const { client, router } = yield* start(cluster, fake)
      const write = SqlRouter.withWrite(whoAmI).pipe(
        Effect.provideService(SqlRouter.SqlRouter, router),
        Effect.provideService(SqlClient.SqlClient, client)
      )
      expect(yield* write).toBe("primary")
      const [old, next] = [cluster.primary, cluster.replicas[0]!]
      // Promoted, while the old primary still accepts writes: a split brain
      // discovery alone would refuse writes over. Patroni names the new leader.
      yield* cluster.promote(next)
      fake.set(answer(cluster, next, { [old.name]: { state: "running", lag: undefined } }))
      yield* eventually(Effect.map(Effect.result(write), (r) => r._tag === "Success" && r.success === next.name), 200)
      yield* rounds(fake, 4)
      expect(yield* Effect.forEach([1, 2, 3, 4], () => write)).toEqual(Array(4).fill(next.name))
      expect((yield* router.primary).id).toBe("node-1")
    }).pipe(Effect.scoped), { timeout: 120_000 })
})

describe("Patroni configuration", () => {
  const hosts = [Redacted.make("postgres://app@127.0.0.1:5432/app")]
  const fieldOf = (config: RouterConfig.RouterConfig) =>
    Effect.map(Effect.flip(RouterConfig.resolve(config)), (error) => [error._tag, error.field])

  it.effect("a bad patroni group is an InvalidConfig naming its field", () =>
    Effect.gen(function*() {
      const urls = [Redacted.make(`http://watcher:${secret}@db1:8008`)]
      expect(yield* fieldOf({ primary: hosts[0], patroni: { urls } })).toEqual(["InvalidConfig", "patroni"])
      expect(yield* fieldOf({ discovery: "auto", hosts, patroni: {} })).toEqual(["InvalidConfig", "patroni.urls"])
      expect(yield* fieldOf({ discovery: "auto", hosts, patroni: { urls: [] } })).toEqual(["InvalidConfig", "patroni.urls"])
      expect(yield* fieldOf({ discovery: "auto", hosts, patroni: { urls: [Redacted.make("ftp://db1")] } }))
        .toEqual(["InvalidConfig", "patroni.urls[0]"])
      expect(yield* fieldOf({ discovery: "auto", hosts, patroni: { urls: ["http://db1:8008" as never] } }))
        .toEqual(["InvalidConfig", "patroni.urls[0]"])
      expect(yield* fieldOf({ discovery: "auto", hosts, patroni: { urls, timeout: -1 } }))
        .toEqual(["InvalidConfig", "patroni.timeout"])
      const error = yield* Effect.flip(RouterConfig.resolve({ primary: hosts[0], patroni: { urls } }))
      expect(`${error.message} ${JSON.stringify(error)}`).not.toContain(secret)
      const resolved = yield* RouterConfig.resolve({ discovery: "auto", hosts, patroni: { urls } })
      expect(resolved.patroni?.urls).toHaveLength(1)
      expect(Duration.toMillis(resolved.patroni!.timeout)).toBe(1000)
      // Saved without its password.
      const json = yield* RouterConfig.toJson({ discovery: "auto", hosts, patroni: { urls } })
      expect(JSON.stringify(json)).not.toContain(secret)
      expect(JSON.stringify(json)).toContain("watcher@db1:8008")
    }))
})
