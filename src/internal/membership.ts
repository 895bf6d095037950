/** @internal */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import * as STM from "effect/STM"
import * as TRef from "effect/TRef"
import type * as Node from "../Node.js"
import type * as RouterConfig from "../RouterConfig.js"
import { InvalidConfig, PrimaryUnavailable, PromotionRefused, UnknownReplica } from "../RouterError.js"
import * as Topology from "../Topology.js"
import { describe } from "./errors.js"
import * as HealthMonitor from "./healthMonitor.js"
import * as NodeInternal from "./node.js"
import type { ClientOptions, RouterState } from "./routing.js"

// Live topology: nodes joining and leaving, the primary changing. Every
// change of the topology is one STM transaction; the pools of nodes that
// leave are closed only after their in-flight work has finished.

/** What building a node needs from the router. @internal */
export interface NodeFactory {
  readonly config: RouterConfig.Resolved
  readonly reactivity: Reactivity.Reactivity["Type"]
  readonly scope: Scope.Scope
  /** Each node's pool lives in a scope of its own, closed when it is removed. */
  readonly nodeScopes: Map<Node.Node, Scope.CloseableScope>
  /** PgClient options of the routed client, applied on every node. */
  readonly clientOptions?: ClientOptions | undefined
}

/** @internal */
export const makeNode = (factory: NodeFactory, id: string, role: Node.Role, url: Redacted.Redacted<string>) =>
  Effect.gen(function*() {
    const scope = yield* Scope.fork(factory.scope, ExecutionStrategy.sequential)
    const { config } = factory
    const node = yield* NodeInternal.make({
      id,
      role,
      url,
      maxSize: role === "primary" ? config.primaryMaxSize : config.replicaMaxSizeEach,
      connectTimeout: config.connectTimeout,
      idleTimeout: config.idleTimeout,
      validate: config.validate,
      ...factory.clientOptions,
      applicationName: factory.clientOptions?.applicationName ?? config.applicationName
    }).pipe(Scope.extend(scope), Effect.provideService(Reactivity.Reactivity, factory.reactivity))
    factory.nodeScopes.set(node, scope)
    return node
  })

/** Starts probing a replica (when the monitor runs), in the router's scope. @internal */
export const watch = (internals: RouterState, replica: Topology.Replica): Effect.Effect<void> =>
  internals.config.health.enabled
    ? Effect.asVoid(Effect.forkIn(
      HealthMonitor.watchReplica(internals.topology, replica, internals.config.health, internals.probes.replica),
      internals.scope
    ))
    : Effect.void

/**
 * A new replica enters rotation after its first good probe; the probes then
 * keep watching it.
 * @internal
 */
export const addReplica = (
  internals: RouterState,
  url: Redacted.Redacted<string>,
  id?: string
): Effect.Effect<Node.Node, InvalidConfig> =>
  Effect.gen(function*() {
    if (!Redacted.isRedacted(url) || !NodeInternal.isPostgresUrl(Redacted.value(url))) {
      return yield* new InvalidConfig({ field: "url", reason: "must be a Redacted postgres:// URL" })
    }
    const existing = yield* allNodes(internals.topology)
    const name = id ?? nextReplicaId(existing)
    if (existing.some((node) => node.id === name)) {
      return yield* new InvalidConfig({ field: "id", reason: `${name} is already a node of this router` })
    }
    const node = yield* makeNode(internals, name, "replica", url)
    const first = yield* Effect.either(internals.probes.replica(node))
    const replica = yield* STM.commit(STM.gen(function*() {
      const replica = yield* Topology.makeReplica(node, first._tag === "Right")
      if (first._tag === "Right") yield* TRef.set(replica.probe, { ...first.right, at: Date.now() })
      yield* TRef.update(internals.topology.replicas, (replicas) => [...replicas, replica])
      return replica
    }))
    yield* first._tag === "Right"
      ? Effect.logInfo(`replica ${name} (${node.address}) added and in rotation`)
      : Effect.logWarning(`replica ${name} (${node.address}) added, not yet healthy: ${describe(first.left)}`)
    yield* watch(internals, replica)
    return node
  })

const nextReplicaId = (nodes: ReadonlyArray<Node.Node>): string => {
  let i = 0
  while (nodes.some((node) => node.id === `replica-${i}`)) i++
  return `replica-${i}`
}

/** @internal */
export const allNodes = (topology: Topology.Topology) =>
  STM.commit(STM.zipWith(
    TRef.get(topology.primary),
    TRef.get(topology.replicas),
    (primary, replicas) => [primary, ...replicas.map((r) => r.node)]
  ))

/**
 * Leaves rotation at once; its in-flight reads and leases finish; then its
 * pool is closed.
 * @internal
 */
export const removeReplica = (internals: RouterState, which: number | string): Effect.Effect<void, UnknownReplica> =>
  Effect.gen(function*() {
    const removed = yield* STM.commit(STM.gen(function*() {
      const replicas = yield* TRef.get(internals.topology.replicas)
      const found = typeof which === "number" ? replicas[which] : replicas.find((r) => r.node.id === which)
      if (found === undefined) return Option.none<Topology.Replica>()
      yield* TRef.set(internals.topology.replicas, replicas.filter((r) => r !== found))
      yield* TRef.update(found.health, (health) => ({ ...health, member: false }))
      return Option.some(found)
    }))
    if (Option.isNone(removed)) return yield* new UnknownReplica({ replica: which })
    const replica = removed.value
    // Retries (blocks) until nothing runs on it any more.
    yield* STM.commit(STM.flatMap(TRef.get(replica.inFlight), (n) => n > 0 ? STM.retry : STM.void))
    yield* internals.probes.forget(replica.node)
    yield* closeNode(internals, replica.node)
    yield* Effect.logInfo(`replica ${replica.node.id} removed`)
  })

const closeNode = (internals: RouterState, node: Node.Node) =>
  Effect.suspend(() => {
    const scope = internals.nodeScopes.get(node)
    internals.nodeScopes.delete(node)
    return scope ? Scope.close(scope, Exit.void) : Effect.void
  })

/**
 * Makes `next` the primary: its replica state leaves the topology, the old
 * primary becomes a replica (out of rotation until its probes say it is a
 * healthy standby). One STM transaction; probing of the old primary starts
 * after it.
 * @internal
 */
export const switchPrimary = (internals: RouterState, next: Node.Node, why: string): Effect.Effect<void> =>
  Effect.gen(function*() {
    const previous = yield* STM.commit(STM.gen(function*() {
      const current = yield* TRef.get(internals.topology.primary)
      if (current === next) return Option.none<Topology.Replica>()
      const replicas = yield* TRef.get(internals.topology.replicas)
      for (const replica of replicas) {
        if (replica.node === next) yield* TRef.update(replica.health, (health) => ({ ...health, member: false }))
      }
      const demoted = yield* Topology.makeReplica(current, false)
      yield* TRef.set(internals.topology.replicas, [...replicas.filter((r) => r.node !== next), demoted])
      yield* TRef.set(internals.topology.primary, next)
      yield* TRef.set(internals.topology.primaryLsn, undefined)
      return Option.some(demoted)
    }))
    if (Option.isNone(previous)) return
    NodeInternal.setRole(next, "primary")
    NodeInternal.setRole(previous.value.node, "replica")
    yield* Effect.logWarning(`primary is now ${next.id} (${next.address}), was ${previous.value.node.id}: ${why}`)
    yield* watch(internals, previous.value)
  })

interface Role {
  readonly node: Node.Node
  readonly writable: boolean
  readonly lsn: bigint | undefined
}

const askRole = (internals: RouterState, node: Node.Node): Effect.Effect<Option.Option<Role>> =>
  internals.probes.role(node).pipe(
    Effect.map(({ lsn, standby }) => Option.some({ node, writable: !standby, lsn })),
    Effect.catchAll(() => Effect.succeed(Option.none<Role>()))
  )

/**
 * One round of discovery: every node is asked whether it is in recovery.
 * Exactly one writable node is the primary; none keeps the last one (writes
 * fail until a node is promoted); more than one is split brain, and writes
 * fail naming them rather than guessing.
 * @internal
 */
export const discover = (internals: RouterState): Effect.Effect<void> =>
  Effect.gen(function*() {
    const nodes = yield* allNodes(internals.topology)
    const roles = yield* Effect.forEach(nodes, (node) => askRole(internals, node), { concurrency: "unbounded" })
    const writable = roles.flatMap((role) => Option.isSome(role) && role.value.writable ? [role.value] : [])
    const conflict = writable.length > 1 ? writable.map((r) => r.node.id) : []
    const before = yield* STM.commit(TRef.getAndSet(internals.topology.conflict, conflict))
    if (conflict.length > 0 && before.length === 0) {
      yield* Effect.logError(`split brain: ${conflict.join(" and ")} all accept writes; writes fail until one is fenced`)
    }
    if (conflict.length === 0 && before.length > 0) yield* Effect.logInfo("split brain resolved")
    if (writable.length !== 1) return
    const [primary] = writable as [Role]
    yield* switchPrimary(internals, primary.node, "discovery found it writable")
    yield* STM.commit(TRef.set(internals.topology.primaryLsn, primary.lsn))
  })

/**
 * A write met a read-only node: the topology changed under us. Re-discover
 * now (in the background) and tell the caller; never retry the write.
 * @internal
 */
export const primaryTurnedReadOnly = (internals: RouterState, node: Node.Node, cause: unknown) =>
  Effect.zipRight(
    internals.config.discovery === "auto" ? Effect.forkIn(discover(internals), internals.scope) : Effect.void,
    Effect.fail(
      new PrimaryUnavailable({
        node: node.id,
        reason: "it no longer accepts writes (read-only: a failover happened?); the write was not retried",
        cause
      })
    )
  )

/** The primary for a write, or the split brain that forbids one. @internal */
export const primaryForWrite = (internals: RouterState): Effect.Effect<Node.Node, PrimaryUnavailable> =>
  STM.commit(STM.gen(function*() {
    const conflict = yield* TRef.get(internals.topology.conflict)
    if (conflict.length > 0) {
      return yield* STM.fail(
        new PrimaryUnavailable({
          node: conflict.join(", "),
          reason: `split brain: ${conflict.join(" and ")} all accept writes`,
          conflicting: conflict
        })
      )
    }
    return yield* TRef.get(internals.topology.primary)
  }))

/**
 * Promotes a replica: refuses when it is behind the primary by more than
 * `maxLag` bytes (0 by default: no committed write may be lost), otherwise
 * runs `pg_promote()`, waits until the node leaves recovery, and makes it the
 * router's primary.
 * @internal
 */
export const promote = (
  internals: RouterState,
  which: number | string,
  maxLag: number
): Effect.Effect<Node.Node, UnknownReplica | PromotionRefused> =>
  Effect.gen(function*() {
    const replicas = yield* STM.commit(TRef.get(internals.topology.replicas))
    const replica = typeof which === "number" ? replicas[which] : replicas.find((r) => r.node.id === which)
    if (replica === undefined) return yield* new UnknownReplica({ replica: which })
    const node = replica.node
    const refuse = (reason: string, extra: { behindBytes?: number; cause?: unknown } = {}) =>
      new PromotionRefused({ replica: node.id, reason, ...extra })
    const timeout = internals.config.connectTimeout
    const query = <A>(target: Node.Node, sql: string) =>
      Effect.tryPromise(() => target.pool.query(sql).then((r) => r.rows[0] as A)).pipe(
        Effect.timeoutFail({ duration: Duration.sum(timeout, timeout), onTimeout: () => new Error("no answer") })
      )
    const primary = yield* STM.commit(TRef.get(internals.topology.primary))
    // The primary's position now if it answers, else the last one we saw.
    const primaryLsn = yield* query<{ lsn: string }>(primary, "SELECT pg_current_wal_lsn()::text AS lsn").pipe(
      Effect.map((row) => HealthMonitor.parseLsn(row.lsn)),
      Effect.orElse(() => STM.commit(TRef.get(internals.topology.primaryLsn)))
    )
    if (primaryLsn === undefined) return yield* refuse("the primary's WAL position is unknown (no probe has seen it)")
    const row = yield* query<{ standby: boolean; replay: string | null }>(
      node,
      "SELECT pg_is_in_recovery() AS standby, pg_last_wal_replay_lsn()::text AS replay"
    ).pipe(Effect.mapError((cause) => refuse(`it does not answer: ${describe(cause)}`, { cause })))
    if (!row.standby) return yield* refuse("it is not a standby")
    const replay = HealthMonitor.parseLsn(row.replay) ?? 0n
    const behind = primaryLsn > replay ? Number(primaryLsn - replay) : 0
    if (behind > maxLag) {
      return yield* refuse(`it is ${behind} bytes behind the primary (maxLag ${maxLag})`, { behindBytes: behind })
    }
    const done = yield* query<{ ok: boolean }>(node, "SELECT pg_promote(true, 60) AS ok").pipe(
      Effect.timeoutFail({ duration: "65 seconds", onTimeout: () => new Error("pg_promote did not return") }),
      Effect.mapError((cause) => refuse(`pg_promote failed: ${describe(cause)}`, { cause }))
    )
    if (!done.ok) return yield* refuse("pg_promote did not finish within 60 seconds")
    yield* switchPrimary(internals, node, "promoted")
    return node
  })
