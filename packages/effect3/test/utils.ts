import * as Cleanup from "@effect-sql-router/core/embedded/Cleanup"
import * as Fs from "node:fs"
import * as Net from "node:net"

/** PIDs of live processes whose command line mentions `directory` (e.g. `postgres -D <dir>/primary`). */
export const postgresProcessesUnder = (directory: string): Array<number> => {
  const found: Array<number> = []
  for (const entry of Fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const cmdline = Fs.readFileSync(`/proc/${entry}/cmdline`, "utf8")
      const stat = Fs.readFileSync(`/proc/${entry}/stat`, "utf8")
      // A zombie has exited already; its parent just has not reaped it yet.
      if (/\) Z /.test(stat)) continue
      if (cmdline.includes(directory)) found.push(Number(entry))
    } catch {
      // the process ended while we looked
    }
  }
  return found
}

/**
 * The shared memory segments of the servers under a cluster `directory`
 * (named in their postmaster.pid files) that the kernel still lists.
 */
export const segmentsUnder = (directory: string): Array<number> => {
  const listed = Cleanup.parseSegments(Fs.readFileSync("/proc/sysvipc/shm", "utf8"))
  return Fs.readdirSync(directory).flatMap((node) => {
    const file = `${directory}/${node}/postmaster.pid`
    const segment = Fs.existsSync(file) ? Cleanup.segmentOf(Fs.readFileSync(file, "utf8")) : undefined
    return segment && listed.get(segment.id)?.key === segment.key ? [segment.id] : []
  })
}

/** Those of `ids` the kernel still lists as shared memory segments. */
export const segmentsListed = (ids: ReadonlyArray<number>): Array<number> => {
  const listed = Cleanup.parseSegments(Fs.readFileSync("/proc/sysvipc/shm", "utf8"))
  return ids.filter((id) => listed.has(id))
}

import * as SqlClient from "@effect/sql/SqlClient"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Tracer from "effect/Tracer"
import type * as RouterConfig from "effect-sql-router/RouterConfig"
import * as SqlRouter from "effect-sql-router/SqlRouter"
import { PgCluster } from "effect-sql-router/testing"

/** The server that answers, by its `cluster_name` (`primary`, `replica-0`, …). */
export const whoAmI = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(sql<{ name: string }>`SELECT current_setting('cluster_name') AS name`, (rows) => rows[0]!.name))

/** Router configuration pointing at every node of a test cluster. */
/** Statements whose text contains `marker` running on `node` now (the query asking excluded). */
export const activeStatements = (cluster: PgCluster.PgCluster, node: PgCluster.ClusterNode, marker: string) =>
  Effect.map(
    cluster.query<{ n: number }>(
      node,
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE '%${marker}%' AND pid <> pg_backend_pid() AND state = 'active'`
    ),
    (rows) => rows[0]!.n
  )

/** Polls (live clock, every 50 ms) until `check` holds; fails with "not yet" after `tries` more tries. */
export const eventually = <E, R>(
  check: Effect.Effect<boolean, E, R>,
  tries: number
): Effect.Effect<void, E | "not yet", R> =>
  check.pipe(
    Effect.flatMap((ok) => ok ? Effect.void : Effect.fail("not yet" as const)),
    Effect.retry(Schedule.intersect(Schedule.spaced("50 millis"), Schedule.recurs(tries)))
  )

export const configFor = (
  cluster: PgCluster.PgCluster,
  extra: Partial<RouterConfig.RouterConfig> = {}
): RouterConfig.RouterConfig => ({
  primary: cluster.primary.url,
  replicas: cluster.replicas.map((r) => r.url),
  connectTimeout: "2 seconds",
  health: { enabled: false },
  ...extra
})

/** A cluster and a router over it, as one layer (one per test file). */
export const clusterWithRouter = (
  options: PgCluster.Options = {},
  extra: Partial<RouterConfig.RouterConfig> = {}
) =>
  Layer.unwrapScoped(
    Effect.map(PgCluster.PgCluster, (cluster) => SqlRouter.layer(configFor(cluster, extra)))
  ).pipe(Layer.provideMerge(PgCluster.layer(options)))

/** A tracer that keeps every span's name and attributes, for assertions. */
export const recordingTracer = () => {
  const spans: Array<{ name: string; attributes: Map<string, unknown> }> = []
  const tracer = Tracer.make({
    span: (name, parent, context, links, startTime, kind) => {
      const attributes = new Map<string, unknown>()
      spans.push({ name, attributes })
      return {
        _tag: "Span",
        name,
        spanId: String(spans.length),
        traceId: "t",
        parent,
        context,
        status: { _tag: "Started", startTime },
        attributes,
        links,
        sampled: true,
        kind,
        end: () => {},
        attribute: (key, value) => void attributes.set(key, value),
        event: () => {},
        addLinks: () => {}
      }
    },
    context: (f) => f()
  })
  return { spans, tracer }
}

/** Retries `effect` every 50 ms until `until` holds (at most `bound`): an awaited condition, never a sleep. */
export const waitFor = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  until: (a: A) => boolean,
  bound: Duration.DurationInput = "40 seconds"
) =>
  effect.pipe(
    Effect.filterOrFail(until, () => "not yet" as const),
    Effect.retry({ schedule: Schedule.spaced("50 millis"), while: (e) => e === "not yet" }),
    Effect.timeout(bound)
  )

/** Calls of statements containing `marker` on `node`, as its pg_stat_statements counts them. */
export const callsOf = (cluster: PgCluster.PgCluster, node: PgCluster.ClusterNode, marker: string) =>
  Effect.map(
    cluster.query<{ n: number }>(
      node,
      `SELECT coalesce(sum(calls), 0)::int AS n FROM pg_stat_statements
       WHERE query LIKE '%${marker}%' AND query NOT LIKE '%pg_stat_statements%'`
    ),
    (rows) => rows[0]!.n
  )

/** A replica's probe (`Catalog.standbyState`) is the router's only statement naming this view. */
export const replicaProbes = (cluster: PgCluster.PgCluster, node: PgCluster.ClusterNode) =>
  callsOf(cluster, node, "pg_stat_wal_receiver")

/**
 * A TCP server that accepts connections and never answers (a host whose
 * PostgreSQL port is open but whose server is hung), closed with its scope.
 */
export const silentServer: Effect.Effect<{ readonly port: number; readonly accepted: () => number }, never, Scope.Scope> =
  Effect.acquireRelease(
    Effect.async<{ server: Net.Server; sockets: Set<Net.Socket>; port: number }>((resume) => {
      const sockets = new Set<Net.Socket>()
      const server = Net.createServer((socket) => {
        sockets.add(socket)
        socket.on("error", () => {})
      })
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed({ server, sockets, port: (server.address() as Net.AddressInfo).port })))
    }),
    ({ server, sockets }) =>
      Effect.async<void>((resume) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map(({ port, sockets }) => ({ port, accepted: () => sockets.size })))
