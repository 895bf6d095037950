/**
 * The cluster harness: picks a backend's driver (embedded, testcontainers or
 * external) and builds the SQL half of `PgCluster` over it.
 * @internal
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { Backend, ClusterNode, Options, PgCluster } from "../PgCluster.js"
import { ClusterError } from "../PgCluster.js"
import type { Driver } from "./driver.js"
import { fail, formatDuration, live, nodeFromUrl, queryNode } from "./driver.js"
import { embedded } from "./embedded.js"
import * as Template from "@effect-sql-router/core/embedded/Template"

const unsupported = (backend: Backend, operation: string) => (node: ClusterNode) =>
  Effect.fail(fail(operation, node, `the ${backend} backend cannot ${operation} a server`))

/**
 * External backend: servers somebody else runs. Only SQL controls work.
 * @internal
 */
export const external = (): Effect.Effect<Driver, ClusterError> =>
  Effect.gen(function*() {
    const primaryUrl = process.env["PG_CLUSTER_PRIMARY_URL"]
    if (!primaryUrl) {
      return yield* fail("setup", undefined, "the external backend needs PG_CLUSTER_PRIMARY_URL (and PG_CLUSTER_REPLICA_URLS)")
    }
    const replicaUrls = (process.env["PG_CLUSTER_REPLICA_URLS"] ?? "").split(",").map((s) => s.trim()).filter(Boolean)
    const nodes = yield* Effect.try({
      try: () => [
        nodeFromUrl("primary", "primary", primaryUrl),
        ...replicaUrls.map((url, i) => nodeFromUrl(`replica-${i}`, "replica", url))
      ],
      catch: (cause) => fail("setup", undefined, "PG_CLUSTER_PRIMARY_URL / PG_CLUSTER_REPLICA_URLS is not a valid URL", cause)
    })
    return {
      backend: "external",
      directory: undefined,
      nodes,
      stop: unsupported("external", "stop"),
      start: unsupported("external", "start"),
      kill: unsupported("external", "kill"),
      freeze: unsupported("external", "freeze"),
      thaw: unsupported("external", "thaw"),
      isUp: () => true,
      addReplica: () => Effect.fail(fail("addReplica", undefined, "the external backend cannot start servers")),
      restartAsStandby: unsupported("external", "restart"),
      rejoinAsStandby: unsupported("external", "re-clone")
    } satisfies Driver
  })

const resolveBackend = (options: Options): Backend => {
  const backend = options.backend ?? process.env["PG_CLUSTER"] ?? "embedded"
  if (backend === "embedded" || backend === "testcontainers" || backend === "external") return backend
  throw new Error(`PG_CLUSTER must be embedded, testcontainers or external, got "${backend}"`)
}

/** @internal */
export const make = (options: Options = {}): Effect.Effect<PgCluster, ClusterError, Scope.Scope> =>
  live(Effect.gen(function*() {
    const backend = yield* Effect.try({
      try: () => resolveBackend(options),
      catch: (cause) => fail("setup", undefined, (cause as Error).message)
    })
    const problem = Template.checkSettings(options.settings ?? {}, options.replicas ?? 2)
    if (problem) {
      return yield* new ClusterError({ operation: "setup", setting: problem.setting, reason: `${problem.setting} ${problem.reason}` })
    }
    const driver: Driver = backend === "embedded"
      ? yield* embedded(options)
      : backend === "external"
      ? yield* external()
      : yield* Effect.flatMap(
        Effect.promise(() => import("./containers.js")),
        (module) => module.testcontainers(options)
      )
    return fromDriver(driver)
  }))

/** Points the standby `node` at `upstream` and waits until its WAL receiver streams from it. */
const streamFrom = (node: ClusterNode, upstream: ClusterNode) =>
  Effect.gen(function*() {
    if (upstream === node) return yield* fail("follow", node, "cannot follow itself")
    const conninfo = `host=${upstream.host} port=${upstream.port} user=${upstream.user} application_name=${node.name}`
    yield* queryNode(node, `ALTER SYSTEM SET primary_conninfo = '${conninfo.replaceAll("'", "''")}'`)
    yield* queryNode(node, "SELECT pg_reload_conf()")
    // The WAL receiver restarts with the new setting; wait until it streams from the upstream.
    for (;;) {
      const rows = yield* queryNode<{ ok: boolean }>(
        node,
        "SELECT count(*) > 0 AS ok FROM pg_stat_wal_receiver WHERE status = 'streaming' AND sender_port = $1",
        [upstream.port]
      )
      if (rows[0]?.ok) return
      yield* Effect.sleep("20 millis")
    }
  })

/**
 * Waits until replay on `node` has actually stopped: `pg_wal_replay_pause()`
 * only requests it, and a record being replayed finishes first
 * (`pg_get_wal_replay_pause_state()` goes from 'pause requested' to 'paused').
 */
const awaitPaused = (node: ClusterNode) =>
  Effect.gen(function*() {
    for (;;) {
      const rows = yield* queryNode<{ state: string }>(node, "SELECT pg_get_wal_replay_pause_state() AS state")
      if (rows[0]?.state === "paused") return
      yield* Effect.sleep("10 millis")
    }
  }).pipe(
    Effect.timeoutOrElse({
      duration: "30 seconds",
      orElse: () => Effect.fail(fail("pauseReplay", node, "replay did not pause within 30s"))
    })
  )

/** Waits until each of `targets` has replayed what `primary` had written when it began. */
const awaitReplayed = (primary: ClusterNode, targets: ReadonlyArray<ClusterNode>, timeout: Duration.Input) =>
  Effect.gen(function*() {
    const [{ lsn }] = (yield* queryNode<{ lsn: string }>(primary, "SELECT pg_current_wal_lsn()::text AS lsn")) as [
      { lsn: string }
    ]
    yield* Effect.forEach(targets, (node) =>
      Effect.gen(function*() {
        for (;;) {
          const rows = yield* queryNode<{ done: boolean }>(
            node,
            "SELECT coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false) AS done",
            [lsn]
          ).pipe(Effect.catch(() => Effect.succeed([{ done: false }])))
          if (rows[0]?.done) return
          yield* Effect.sleep("10 millis")
        }
      }), { concurrency: "unbounded", discard: true }).pipe(
      Effect.timeoutOrElse({
        duration: timeout,
        orElse: () =>
          Effect.fail(fail("awaitReplication", undefined, `replicas did not replay ${lsn} within ${formatDuration(timeout)}`))
      })
    )
  })

/** The SQL half of the harness, the same for every backend. @internal */
export const fromDriver = (driver: Driver): PgCluster => {
  let primary = driver.nodes[0]!
  /** Names of the nodes that are standbys now: promotion takes one out, a rejoin puts one in. */
  const standbys = new Set(driver.nodes.filter((node) => node.role === "replica").map((node) => node.name))
  const paused = new Set<string>()
  const replicas = () => driver.nodes.filter((node) => node !== primary && standbys.has(node.name))

  const requireReplica = (operation: string, node: ClusterNode) =>
    node === primary || !standbys.has(node.name)
      ? Effect.fail(fail(operation, node, "not a replica"))
      : Effect.void

  const becomeStandby = (operation: string, run: (node: ClusterNode, primary: ClusterNode) => Effect.Effect<void, ClusterError>) =>
  (node: ClusterNode) =>
    live(Effect.gen(function*() {
      if (node === primary) return yield* fail(operation, node, "is the current primary: promote another node first")
      const current = primary
      yield* run(node, current)
      standbys.add(node.name)
      paused.delete(node.name)
    }))

  const cluster: PgCluster = {
    backend: driver.backend,
    directory: driver.directory,
    get primary() {
      return primary
    },
    get replicas() {
      return replicas()
    },
    get nodes() {
      return driver.nodes.slice()
    },
    stop: (node) => live(driver.stop(node)),
    start: (node) => live(driver.start(node)),
    kill: (node) => live(driver.kill(node)),
    freeze: (node) => live(driver.freeze(node)),
    thaw: (node) => live(driver.thaw(node)),
    query: (node, sql, params) => queryNode(node, sql, params),
    isInRecovery: (node) =>
      queryNode<{ r: boolean }>(node, "SELECT pg_is_in_recovery() AS r").pipe(Effect.map((rows) => rows[0]!.r)),
    pauseReplay: (node) =>
      live(requireReplica("pauseReplay", node).pipe(
        Effect.andThen(queryNode(node, "SELECT pg_wal_replay_pause()")),
        Effect.andThen(awaitPaused(node)),
        Effect.andThen(Effect.sync(() => paused.add(node.name)))
      )),
    resumeReplay: (node) =>
      requireReplica("resumeReplay", node).pipe(
        Effect.andThen(queryNode(node, "SELECT pg_wal_replay_resume()")),
        Effect.andThen(Effect.sync(() => paused.delete(node.name)))
      ),
    promote: (node) =>
      live(Effect.gen(function*() {
        yield* requireReplica("promote", node)
        const rows = yield* queryNode<{ ok: boolean }>(node, "SELECT pg_promote(true, 60) AS ok", [], 65_000)
        if (!rows[0]?.ok) return yield* fail("promote", node, "pg_promote() did not complete within 60s")
        standbys.delete(node.name)
        paused.delete(node.name)
        primary = node
      })),
    follow: (node, upstream) =>
      live(Effect.gen(function*() {
        yield* requireReplica("follow", node)
        yield* streamFrom(node, upstream)
      }).pipe(
        Effect.timeoutOrElse({
          duration: "30 seconds",
          orElse: () => Effect.fail(fail("follow", node, `did not stream from ${upstream.name} within 30s`))
        })
      )),
    awaitReplication: (options = {}) =>
      live(Effect.suspend(() =>
        awaitReplayed(
          primary,
          options.replicas ?? replicas().filter((node) => driver.isUp(node) && !paused.has(node.name)),
          options.timeout ?? "30 seconds"
        )
      )),
    addReplica: () =>
      live(Effect.tap(driver.addReplica(primary), (node) => Effect.sync(() => standbys.add(node.name)))),
    restartAsStandby: becomeStandby("restartAsStandby", driver.restartAsStandby),
    rejoinAsStandby: becomeStandby("rejoinAsStandby", driver.rejoinAsStandby)
  }
  return cluster
}
