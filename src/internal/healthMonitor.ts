/** @internal */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as STM from "effect/STM"
import * as TRef from "effect/TRef"
import Pg from "pg"
import type * as HealthMonitor from "../HealthMonitor.js"
import type * as Node from "../Node.js"
import type * as RouterConfig from "../RouterConfig.js"
import * as Topology from "../Topology.js"
import { describe } from "./errors.js"
import { healthTransitions, healthyReplicas, probeFailures, replicaLagBytes, replicaLagMillis } from "./metrics.js"

/** `16/B374D848` → bigint. @internal */
export const parseLsn = (text: string | null | undefined): bigint | undefined => {
  if (!text) return undefined
  const slash = text.indexOf("/")
  if (slash < 0) return undefined
  return (BigInt(`0x${text.slice(0, slash)}`) << 32n) + BigInt(`0x${text.slice(slash + 1)}`)
}

/** bigint → `16/B374D848`. @internal */
export const formatLsn = (lsn: bigint): string =>
  `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`

/**
 * One dedicated connection per node for probes: health must not compete with
 * the application for pool slots, nor be hidden by an exhausted pool. A probe
 * that fails or times out drops the connection; the next one opens a new one.
 * @internal
 */
export const makeProber = (node: Node.Node, timeout: Duration.Duration) => {
  let client: Pg.Client | undefined
  const drop = () => {
    const current = client
    client = undefined
    if (current) {
      // end() waits for the server; a frozen one never answers.
      ;(current as unknown as { connection?: { stream?: { destroy?: () => void } } }).connection?.stream?.destroy?.()
      void current.end().catch(() => {})
    }
  }
  const query = <A>(sql: string): Effect.Effect<A, unknown> =>
    Effect.tryPromise({
      try: async () => {
        if (!client) {
          const fresh = new Pg.Client({
            ...node.pool.options,
            connectionTimeoutMillis: Duration.toMillis(timeout),
            application_name: `${String(node.pool.options.application_name ?? "effect-sql-router")}:probe`
          } as Pg.ClientConfig)
          fresh.on("error", () => {})
          client = fresh
          await fresh.connect()
        }
        return (await client.query(sql)).rows[0] as A
      },
      catch: (error) => error
    }).pipe(
      Effect.timeoutFail({ duration: timeout, onTimeout: () => new Error(`probe timed out after ${Duration.format(timeout)}`) }),
      Effect.tapError(() => Effect.sync(drop))
    )
  return { query, close: Effect.sync(drop) }
}

interface ReplicaRow {
  readonly standby: boolean
  readonly replay: string | null
  readonly behind_ms: number | null
}

interface PrimaryRow {
  readonly standby: boolean
  readonly lsn: string | null
}

/**
 * Probes a replica: it must be a standby; lag is measured against the
 * primary's position at its last probe. A replica that has replayed
 * everything has no lag, however old its last replayed commit.
 * @internal
 */
export const probeReplica = (
  query: <A>(sql: string) => Effect.Effect<A, unknown>,
  primaryLsn: Effect.Effect<bigint | undefined>
): Effect.Effect<Omit<Topology.Probe, "at">, unknown> =>
  Effect.gen(function*() {
    const row = yield* query<ReplicaRow>(
      `SELECT pg_is_in_recovery() AS standby, pg_last_wal_replay_lsn()::text AS replay,
              (extract(epoch FROM (now() - pg_last_xact_replay_timestamp())) * 1000)::float8 AS behind_ms`
    )
    if (!row.standby) return yield* Effect.fail(new Error("the server is not a standby (not in recovery)"))
    const replayLsn = parseLsn(row.replay)
    const primary = yield* primaryLsn
    const lagBytes = replayLsn === undefined || primary === undefined
      ? undefined
      : primary > replayLsn
      ? Number(primary - replayLsn)
      : 0
    const lagMillis = lagBytes === 0 ? 0 : lagBytes === undefined ? undefined : Math.max(0, row.behind_ms ?? 0)
    return { ok: true, replayLsn, lagBytes, lagMillis, error: undefined }
  })

/** @internal */
export const probePrimary = (
  query: <A>(sql: string) => Effect.Effect<A, unknown>
): Effect.Effect<bigint | undefined, unknown> =>
  Effect.flatMap(
    query<PrimaryRow>("SELECT pg_is_in_recovery() AS standby, pg_current_wal_lsn()::text AS lsn"),
    (row) =>
      row.standby
        ? Effect.fail(new Error("the primary is a standby (in recovery)"))
        : Effect.succeed(parseLsn(row.lsn))
  )

/**
 * Records a probe and applies hysteresis: out after `failureThreshold`
 * consecutive failures, back after `successThreshold` consecutive successes.
 * `streak` counts successes when positive, failures when negative.
 * @internal
 */
export const applyProbe = (
  replica: Topology.Replica,
  probe: Topology.Probe,
  thresholds: { readonly failureThreshold: number; readonly successThreshold: number }
): STM.STM<HealthMonitor.Transition | undefined> =>
  STM.gen(function*() {
    const health = yield* TRef.get(replica.health)
    if (!health.member) return undefined
    yield* TRef.set(replica.probe, probe)
    const streak = probe.ok ? Math.max(0, health.streak) + 1 : Math.min(0, health.streak) - 1
    const transition: HealthMonitor.Transition | undefined = health.up && -streak >= thresholds.failureThreshold
      ? "down"
      : !health.up && streak >= thresholds.successThreshold
      ? "up"
      : undefined
    yield* TRef.set(replica.health, {
      ...health,
      streak,
      up: transition === undefined ? health.up : transition === "up"
    })
    return transition
  })

/** @internal */
export const logTransition = (replica: Topology.Replica, transition: HealthMonitor.Transition | undefined, probe: Topology.Probe) =>
  transition === undefined
    ? Effect.void
    : transition === "down"
    ? Effect.logWarning(`replica ${replica.node.id} left rotation: ${probe.error ?? "probe failed"}`)
    : Effect.logInfo(`replica ${replica.node.id} is back in rotation`)

/** @internal */
export const updateGauges = (topology: Topology.Topology) =>
  Effect.flatMap(
    STM.commit(STM.zip(Topology.countHealthy(topology), TRef.get(topology.replicas))),
    ([healthy, replicas]) =>
      Effect.zipRight(
        Metric.set(healthyReplicas, healthy),
        Effect.forEach(replicas, (replica) =>
          Effect.flatMap(STM.commit(TRef.get(replica.probe)), (probe) =>
            Effect.all([
              Metric.set(Metric.tagged(replicaLagBytes, "node", replica.node.id), probe?.lagBytes ?? 0),
              Metric.set(Metric.tagged(replicaLagMillis, "node", replica.node.id), probe?.lagMillis ?? 0)
            ])), { discard: true })
      )
  )

/**
 * One probe of one replica, recorded: the unit the schedule repeats.
 * @internal
 */
export const checkReplica = (
  replica: Topology.Replica,
  probe: HealthMonitor.ProbeFn,
  thresholds: { readonly failureThreshold: number; readonly successThreshold: number }
) =>
  Effect.gen(function*() {
    const result = yield* Effect.either(probe(replica.node))
    const at = yield* Clock.currentTimeMillis
    const previous = yield* STM.commit(TRef.get(replica.probe))
    const recorded: Topology.Probe = result._tag === "Right"
      ? { ...(result.right as Omit<Topology.Probe, "at">), at }
      : {
        at,
        ok: false,
        // Keep the last known position: lag stays known while a probe fails.
        replayLsn: previous?.replayLsn,
        lagBytes: previous?.lagBytes,
        lagMillis: previous?.lagMillis,
        error: describe(result.left)
      }
    if (!recorded.ok) yield* Metric.increment(Metric.tagged(probeFailures, "node", replica.node.id))
    const transition = yield* STM.commit(applyProbe(replica, recorded, thresholds))
    yield* logTransition(replica, transition, recorded)
    if (transition !== undefined) {
      yield* Metric.increment(Metric.tagged(healthTransitions, "to", transition === "up" ? "healthy" : "unhealthy"))
    }
    return transition
  })

/**
 * The probe loop of one replica, until it is removed from the topology.
 * Each replica has its own fiber: a frozen one must not delay the others.
 * @internal
 */
export const watchReplica = (
  topology: Topology.Topology,
  replica: Topology.Replica,
  health: RouterConfig.Resolved["health"],
  probe: HealthMonitor.ProbeFn
): Effect.Effect<void> =>
  Effect.repeat(
    checkReplica(replica, probe, health).pipe(
      Effect.zipRight(updateGauges(topology)),
      Effect.zipRight(STM.commit(STM.map(TRef.get(replica.health), (health) => health.member)))
    ),
    { schedule: Schedule.spaced(health.interval), while: (member) => member }
  ).pipe(Effect.asVoid)

/**
 * The primary's probe loop: its WAL position is what replica lag is measured against.
 * @internal
 */
export const watchPrimary = (
  topology: Topology.Topology,
  health: RouterConfig.Resolved["health"],
  probePrimary: (node: Node.Node) => Effect.Effect<bigint | undefined, unknown>
): Effect.Effect<void> =>
  Effect.repeat(
    Effect.gen(function*() {
      const primary = yield* STM.commit(TRef.get(topology.primary))
      const lsn = yield* Effect.either(probePrimary(primary))
      if (lsn._tag === "Right") yield* STM.commit(TRef.set(topology.primaryLsn, lsn.right))
      else yield* Effect.logWarning(`primary probe failed: ${describe(lsn.left)}`)
    }),
    Schedule.spaced(health.interval)
  ).pipe(Effect.asVoid)

/** @internal */
export interface Probes {
  readonly replica: HealthMonitor.ProbeFn
  readonly primary: (node: Node.Node) => Effect.Effect<bigint | undefined, unknown>
  /** Whether the node is in recovery, and its WAL position (current if writable, replayed if not). */
  readonly role: (node: Node.Node) => Effect.Effect<{ readonly standby: boolean; readonly lsn: bigint | undefined }, unknown>
  /** Closes the probe connection of a node that left the topology. */
  readonly forget: (node: Node.Node) => Effect.Effect<void>
}

/**
 * Real probes over one dedicated connection per node, closed with the scope.
 * @internal
 */
export const makeProbes = (
  topology: Topology.Topology,
  timeout: Duration.Duration
): Effect.Effect<Probes, never, Scope.Scope> =>
  Effect.gen(function*() {
    const probers = new Map<Node.Node, ReturnType<typeof makeProber>>()
    yield* Effect.addFinalizer(() => Effect.forEach(probers.values(), (p) => p.close, { discard: true }))
    const proberOf = (node: Node.Node) => {
      let prober = probers.get(node)
      if (prober === undefined) {
        prober = makeProber(node, timeout)
        probers.set(node, prober)
      }
      return prober
    }
    const primaryLsn = STM.commit(TRef.get(topology.primaryLsn))
    return {
      replica: (node) => probeReplica(proberOf(node).query, primaryLsn),
      primary: (node) => probePrimary(proberOf(node).query),
      role: (node) =>
        Effect.map(
          proberOf(node).query<{ standby: boolean; lsn: string | null }>(
            `SELECT pg_is_in_recovery() AS standby,
                    (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text AS lsn`
          ),
          (row) => ({ standby: row.standby, lsn: parseLsn(row.lsn) })
        ),
      forget: (node) =>
        Effect.suspend(() => {
          const prober = probers.get(node)
          probers.delete(node)
          return prober ? prober.close : Effect.void
        })
    }
  })

/**
 * Forks the primary's loop and one loop per replica into the current scope.
 * @internal
 */
export const start = (options: {
  readonly topology: Topology.Topology
  readonly health: RouterConfig.Resolved["health"]
  readonly probe: HealthMonitor.ProbeFn
  readonly probePrimary: (node: Node.Node) => Effect.Effect<bigint | undefined, unknown>
  /** With discovery, one round of it replaces the primary's probe. */
  readonly primaryLoop?: Effect.Effect<void> | undefined
}): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function*() {
    const { health, topology } = options
    yield* Effect.forkScoped(
      options.primaryLoop
        ? Effect.asVoid(Effect.repeat(options.primaryLoop, Schedule.spaced(health.interval)))
        : watchPrimary(topology, health, options.probePrimary)
    )
    const replicas = yield* STM.commit(TRef.get(topology.replicas))
    for (const replica of replicas) {
      yield* Effect.forkScoped(watchReplica(topology, replica, health, options.probe))
    }
  })
