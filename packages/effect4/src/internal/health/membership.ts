/** @internal */
import { newestTimeline } from "@effect-sql-router/core/Discovery"
import * as Health from "@effect-sql-router/core/Health"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import type * as Reactivity from "effect/reactivity/Reactivity"
import * as ReactivityService from "effect/reactivity/Reactivity"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import * as Scope from "effect/Scope"
import * as TxRef from "effect/TxRef"
import type * as Node from "../../Node.js"
import type * as RouterConfig from "../../RouterConfig.js"
import { InvalidConfig, PrimaryUnavailable, PromotionRefused, UnknownReplica } from "../../RouterError.js"
import * as Topology from "../../Topology.js"
import { addressOf, isPostgresUrl } from "../connectionString.js"
import { describe } from "../errors.js"
import * as NodeInternal from "../node.js"
import { poolFor } from "../routerConfig.js"
import type { ClientOptions, RouterState } from "../routerState.js"
import * as Catalog from "./catalog.js"
import * as HealthMonitor from "./monitor.js"
import * as Waiting from "./waiting.js"

// Live topology: nodes joining and leaving, the primary changing. Every
// change of the topology is one transaction (`Effect.tx`); the pools of nodes
// that leave are closed only after their in-flight work has finished.

/** What building a node needs from the router. @internal */
export interface NodeFactory {
  readonly config: RouterConfig.Resolved
  readonly reactivity: Reactivity.Reactivity
  readonly scope: Scope.Scope
  /** Each node's pool lives in a scope of its own, closed when it is removed. */
  readonly nodeScopes: Map<Node.Node, Scope.Closeable>
  /** PgClient options of the routed client, applied on every node. */
  readonly clientOptions?: ClientOptions | undefined
}

/**
 * A node with its pool sized and set up for `role` (`primaryMaxSize` and
 * `primaryPool`, or `replicaMaxSizeEach` and `replicaPool`), in a scope of
 * its own under the router's.
 * @internal
 */
export const makeNode = (
  factory: NodeFactory,
  id: string,
  role: Node.Role,
  url: Redacted.Redacted<string>,
  direct?: Redacted.Redacted<string> | undefined
): Effect.Effect<Node.Node> =>
  Effect.gen(function*() {
    const scope = yield* Scope.fork(factory.scope, "sequential")
    const { config } = factory
    const node = yield* NodeInternal.make({
      id,
      role,
      url,
      direct,
      ...poolFor(config, role),
      connectTimeout: config.connectTimeout,
      idleTimeout: config.idleTimeout,
      ...factory.clientOptions,
      applicationName: factory.clientOptions?.applicationName ?? config.applicationName
    }).pipe(
      Scope.provide(scope),
      Effect.provideService(ReactivityService.Reactivity, factory.reactivity),
      // The pool connects lazily: making it opens no connection, so it has nothing to fail on.
      Effect.orDie
    )
    factory.nodeScopes.set(node, scope)
    return node
  })

/**
 * A node's role as last known: with discovery, and after a failover or a
 * promotion, it follows what the servers say.
 * @internal
 */
export const setRole = (node: Node.Node, role: Node.Role): void => NodeInternal.setRole(node, role)

/** Starts probing a replica (when the monitor runs), in the router's scope. @internal */
export const watch = (internals: RouterState, replica: Topology.Replica): Effect.Effect<void> =>
  internals.config.health.enabled
    ? Effect.asVoid(Effect.forkIn(
      HealthMonitor.onClock(
        internals.config.health,
        HealthMonitor.watchReplica(
          internals.topology,
          replica,
          internals.config.health,
          internals.probes.replica,
          internals.probes.watch
        )
      ),
      internals.scope
    ))
    : Effect.void

/**
 * A new replica enters rotation if its first probe finds it following the
 * primary; the probes then keep watching it.
 * @internal
 */
export const addReplica = (
  internals: RouterState,
  url: Redacted.Redacted<string>,
  id?: string,
  direct?: Redacted.Redacted<string>
): Effect.Effect<Node.Node, InvalidConfig> =>
  Effect.gen(function*() {
    if (!Redacted.isRedacted(url) || !isPostgresUrl(Redacted.value(url))) {
      return yield* new InvalidConfig({ field: "url", reason: "must be a Redacted postgres:// URL" })
    }
    const existing = yield* allNodes(internals.topology)
    const name = id ?? nextReplicaId(existing)
    if (existing.some((node) => node.id === name)) {
      return yield* new InvalidConfig({ field: "id", reason: `${name} is already a node of this router` })
    }
    if (direct !== undefined && (!Redacted.isRedacted(direct) || !isPostgresUrl(Redacted.value(direct)))) {
      return yield* new InvalidConfig({ field: "direct", reason: "must be a Redacted postgres:// URL" })
    }
    const node = yield* makeNode(internals, name, "replica", url, direct)
    const first = yield* Effect.result(internals.probes.replica(node))
    const following = first._tag === "Success" && first.success.state?._tag === "Following"
    const replica = yield* Topology.makeReplica(node, following)
    const at = Date.now()
    yield* Effect.tx(Effect.andThen(
      first._tag === "Success" ? TxRef.set(replica.probe, { ...first.success, at }) : Effect.void,
      TxRef.update(internals.topology.replicas, (replicas) => [...replicas, replica])
    ))
    yield* following
      ? Effect.logInfo(`replica ${name} (${node.address}) added and in rotation`)
      : Effect.logWarning(
        `replica ${name} (${node.address}) added, not yet in rotation: ${
          first._tag === "Failure" ? describe(first.failure) : first.success.error
        }`
      )
    yield* watch(internals, replica)
    return node
  })

const nextReplicaId = (nodes: ReadonlyArray<Node.Node>): string => {
  let i = 0
  while (nodes.some((node) => node.id === `replica-${i}`)) i++
  return `replica-${i}`
}

/** The primary and the replicas' nodes, as one snapshot. @internal */
export const allNodes = (topology: Topology.Topology): Effect.Effect<Array<Node.Node>> =>
  Effect.tx(Effect.zipWith(
    TxRef.get(topology.primary),
    TxRef.get(topology.replicas),
    (primary, replicas) => [primary, ...replicas.map((r) => r.node)]
  ))

/**
 * Leaves rotation at once; what still runs on it is released (see
 * `Waiting`); once its in-flight count is back to 0, its pool is closed.
 * @internal
 */
export const removeReplica = (internals: RouterState, which: number | string): Effect.Effect<void, UnknownReplica> =>
  Effect.gen(function*() {
    const removed = yield* Effect.tx(Effect.gen(function*() {
      const replicas = yield* TxRef.get(internals.topology.replicas)
      const found = typeof which === "number" ? replicas[which] : replicas.find((r) => r.node.id === which)
      if (found === undefined) return Option.none<Topology.Replica>()
      yield* TxRef.set(internals.topology.replicas, replicas.filter((r) => r !== found))
      yield* TxRef.set(found.health, Health.removed)
      return Option.some(found)
    }))
    if (Option.isNone(removed)) return yield* new UnknownReplica({ replica: which })
    const replica = removed.value
    // Routed reads waiting on it run elsewhere now.
    Waiting.releaseWaiting(replica)
    // Waits (the transaction retries when the count changes) until nothing runs on it any more.
    yield* Effect.tx(Effect.flatMap(TxRef.get(replica.inFlight), (n) => n > 0 ? Effect.txRetry : Effect.void))
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
 * primary becomes a replica (out of rotation until its probes say it follows
 * the new primary) and its sessions are severed. One transaction; probing of
 * the old primary starts after it.
 * @internal
 */
export const switchPrimary = (internals: RouterState, next: Node.Node, why: string): Effect.Effect<void> =>
  Effect.gen(function*() {
    const current = yield* TxRef.get(internals.topology.primary)
    if (current === next) return
    // Made outside the transaction: a retry must not make another.
    const demoted = yield* Topology.makeReplica(current, false)
    const switched = yield* Effect.tx(Effect.gen(function*() {
      if ((yield* TxRef.get(internals.topology.primary)) !== current) return false
      const replicas = yield* TxRef.get(internals.topology.replicas)
      for (const replica of replicas) {
        if (replica.node === next) yield* TxRef.set(replica.health, Health.removed)
      }
      yield* TxRef.set(internals.topology.replicas, [...replicas.filter((r) => r.node !== next), demoted])
      yield* TxRef.set(internals.topology.primary, next)
      yield* TxRef.set(internals.topology.primaryLsn, undefined)
      return true
    }))
    // Another switch came first: judge again from what it left.
    if (!switched) return yield* switchPrimary(internals, next, why)
    // What was sent to the old primary before the switch is cut at once, as
    // when a replica leaves rotation: its routed reads run again where they
    // are decided now (never on a node that may be on a losing timeline), and
    // its writes and transactions fail with a connection error (their outcome
    // unknown) instead of reporting a success the new primary may not have.
    NodeInternal.sever(current)
    setRole(next, "primary")
    setRole(current, "replica")
    // Each pool takes its new role's size, pipelining and preparation.
    yield* Effect.ignore(NodeInternal.reconfigure(next, poolFor(internals.config, "primary")))
    yield* Effect.ignore(NodeInternal.reconfigure(current, poolFor(internals.config, "replica")))
    yield* Effect.logWarning(`primary is now ${next.id} (${next.address}), was ${current.id}: ${why}`)
    yield* watch(internals, demoted)
  })

interface Role {
  readonly node: Node.Node
  readonly writable: boolean
  readonly answer: Catalog.NodeRole
}

/** The current primary is asked its role with its report of the standbys (one statement); the others their role. */
const askRole = (internals: RouterState, node: Node.Node, current: Node.Node): Effect.Effect<Option.Option<Role>> =>
  (node === current ? internals.probes.primaryRole(node) : internals.probes.role(node)).pipe(
    Effect.map((answer) => Option.some({ node, writable: !answer.standby, answer })),
    Effect.catch(() => Effect.succeed(Option.none<Role>()))
  )

/**
 * One round of discovery: every node is asked whether it is in recovery.
 * Exactly one writable node is the primary; none keeps the last one (writes
 * fail until a node is promoted); more than one is split brain, and writes
 * fail naming them rather than guessing. Reads, though, follow the newest
 * timeline (`newestTimeline` in the core): the writable node on it becomes
 * the router's primary (for reads and as what replicas must follow, so its
 * standbys serve), and a writable node on an older timeline serves none (it
 * is a replica that is `Writable`, out of rotation).
 * @internal
 */
export const discover = (internals: RouterState): Effect.Effect<void> =>
  Effect.gen(function*() {
    // With Patroni configured and answering, its leader is the primary (health/patroni.ts).
    if (internals.patroni !== undefined && (yield* internals.patroni.round(internals))) return
    const nodes = yield* allNodes(internals.topology)
    const roles = yield* Effect.forEach(nodes, (node) => askRole(internals, node, nodes[0]!), {
      concurrency: "unbounded"
    })
    const writable = roles.flatMap((role) => Option.isSome(role) && role.value.writable ? [role.value] : [])
    // Sorted: the same split brain reads the same whichever node is primary now.
    const conflict = writable.length > 1 ? writable.map((r) => r.node.id).sort() : []
    const newest = writable.length > 1
      ? newestTimeline(writable.map((role) => ({ role, timeline: role.answer.timeline })))?.role
      : undefined
    const before = yield* TxRef.modify(internals.topology.conflict, (before) => [before, conflict])
    if (conflict.length > 0 && before.length === 0) {
      yield* Effect.logError(
        `split brain: ${conflict.join(" and ")} all accept writes; writes fail until one is fenced; ${
          newest === undefined
            ? "reads stay where they were (the newest timeline cannot be told)"
            : `reads follow ${newest.node.id}, on the newest timeline (${newest.answer.timeline})`
        }`
      )
    }
    if (conflict.length === 0 && before.length > 0) yield* Effect.logInfo("split brain resolved")
    const leader = writable.length === 1 ? writable[0]! : newest
    if (leader === undefined) {
      // What replicas follow: the current primary's own answer, if it gave one.
      const current = yield* TxRef.get(internals.topology.primary)
      const answered = writable.find((role) => role.node === current)
      return yield* internals.probes.recordPrimary(current, answered?.answer)
    }
    yield* switchPrimary(
      internals,
      leader.node,
      writable.length === 1
        ? "discovery found it writable"
        : `split brain: it is on the newest timeline (${leader.answer.timeline}); writes fail until the others are fenced`
    )
    yield* internals.probes.recordPrimary(leader.node, leader.answer)
    yield* TxRef.set(internals.topology.primaryLsn, leader.answer.lsn)
  })

/** The discovery round running now, per router: at most one at a time. */
const rounds = new WeakMap<Topology.Topology, Deferred.Deferred<void>>()

/**
 * Joins the discovery round that runs now, or starts one (forked into the
 * router's scope, so that a caller who stops waiting does not stop it).
 * Returns when the round is over.
 * @internal
 */
export const discoverOnce = (internals: RouterState): Effect.Effect<void> =>
  Effect.suspend(() => {
    const running = rounds.get(internals.topology)
    if (running !== undefined) return Deferred.await(running)
    const done = Deferred.makeUnsafe<void>()
    rounds.set(internals.topology, done)
    return Effect.andThen(
      Effect.forkIn(
        discover(internals).pipe(
          Effect.ensuring(Effect.suspend(() => {
            rounds.delete(internals.topology)
            return Deferred.succeed(done, undefined)
          }))
        ),
        internals.scope
      ),
      Deferred.await(done)
    )
  })

/**
 * A write met a read-only node: the topology changed under us. Join (or
 * start) the one discovery round, wait for it (bounded by the probe timeout
 * plus the connect timeout) so that the next write goes to the new primary,
 * and tell the caller; never retry the write.
 * @internal
 */
export const primaryTurnedReadOnly = (
  internals: RouterState,
  node: Node.Node,
  cause: unknown
): Effect.Effect<never, PrimaryUnavailable> =>
  Effect.andThen(
    internals.config.discovery === "auto"
      ? Effect.ignore(Effect.timeout(
        discoverOnce(internals),
        Duration.sum(internals.config.health.timeout, internals.config.connectTimeout)
      ))
      : Effect.void,
    Effect.fail(
      new PrimaryUnavailable({
        node: node.id,
        reason: "it no longer accepts writes (read-only: a failover happened?); the write was not retried",
        cause
      })
    )
  )

/**
 * A write whose primary stopped being the primary while it was in flight:
 * the switch cut its connection, so its outcome is unknown; it is never run
 * again.
 * @internal
 */
export const switchedUnderWrite = (node: Node.Node, cause: unknown): PrimaryUnavailable =>
  new PrimaryUnavailable({
    node: node.id,
    reason:
      "it stopped being the primary while the write was in flight (its connections were cut at the switch): the write's outcome is unknown and it was not retried",
    cause
  })

/** The primary for a write, or the split brain that forbids one. @internal */
export const primaryForWrite = (internals: RouterState): Effect.Effect<Node.Node, PrimaryUnavailable> =>
  Effect.flatMap(
    Effect.tx(Effect.zip(TxRef.get(internals.topology.conflict), TxRef.get(internals.topology.primary))),
    ([conflict, primary]) =>
      conflict.length > 0
        ? Effect.fail(
          new PrimaryUnavailable({
            node: conflict.join(", "),
            reason: `split brain: ${conflict.join(" and ")} all accept writes`,
            conflicting: conflict
          })
        )
        : Effect.succeed(primary)
  )

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
    const replicas = yield* TxRef.get(internals.topology.replicas)
    const replica = typeof which === "number" ? replicas[which] : replicas.find((r) => r.node.id === which)
    if (replica === undefined) return yield* new UnknownReplica({ replica: which })
    const node = replica.node
    const refuse = (reason: string, extra: { behindBytes?: number; cause?: unknown } = {}) =>
      new PromotionRefused({ replica: node.id, reason, ...extra })
    const timeout = Duration.sum(internals.config.connectTimeout, internals.config.connectTimeout)
    const primary = yield* TxRef.get(internals.topology.primary)
    // The primary's position now if it answers, else the last one we saw.
    const primaryLsn = yield* Catalog.currentLsn(HealthMonitor.nodeQuery(primary, timeout)).pipe(
      Effect.catch(() => TxRef.get(internals.topology.primaryLsn))
    )
    if (primaryLsn === undefined) return yield* refuse("the primary's WAL position is unknown (no probe has seen it)")
    const row = yield* Catalog.replayLsn(HealthMonitor.nodeQuery(node, timeout)).pipe(
      Effect.mapError((cause) => refuse(`it does not answer: ${describe(cause)}`, { cause }))
    )
    if (!row.standby) return yield* refuse("it is not a standby")
    const replay = row.replay ?? 0n
    const behind = primaryLsn > replay ? Number(primaryLsn - replay) : 0
    if (behind > maxLag) {
      return yield* refuse(`it is ${behind} bytes behind the primary (maxLag ${maxLag})`, { behindBytes: behind })
    }
    // pg_promote waits up to 60 seconds for the node to leave recovery.
    const done = yield* HealthMonitor.within(
      Effect.map(NodeInternal.query(node, Catalog.promoteSql, [], undefined), (rows) => rows[0] as { ok: boolean }),
      Duration.seconds(65),
      () => Effect.fail(new Error("pg_promote did not return"))
    ).pipe(Effect.mapError((cause) => refuse(`pg_promote failed: ${describe(cause)}`, { cause })))
    if (!done.ok) return yield* refuse("pg_promote did not finish within 60 seconds")
    yield* switchPrimary(internals, node, "promoted")
    return node
  })

// -----------------------------------------------------------------------------
// Start-up discovery
// -----------------------------------------------------------------------------

interface Identity {
  readonly standby: boolean
  readonly system: string
}

/** How long a node may take to answer at start: the connect timeout and a little. */
const startTimeout = (config: RouterConfig.Resolved) => Duration.sum(config.connectTimeout, Duration.millis(500))

/** Asks a node at start whether it is a standby, and its cluster's identity, over its own pool. */
const askAtStart = (node: Node.Node, config: RouterConfig.Resolved): Effect.Effect<Identity, unknown> =>
  HealthMonitor.within(
    Effect.map(NodeInternal.query(node, Catalog.identitySql, [], undefined), (rows) => rows[0] as Identity),
    startTimeout(config),
    () => Effect.fail(new Error(`no answer within ${Duration.format(config.connectTimeout)}`))
  )

const checkPrimary = (node: Node.Node, config: RouterConfig.Resolved) =>
  askAtStart(node, config).pipe(
    Effect.mapError((cause) => new PrimaryUnavailable({ node: node.address, reason: describe(cause), cause })),
    Effect.flatMap((row) =>
      row.standby
        ? Effect.fail(new PrimaryUnavailable({ node: node.address, reason: "the server is a standby (in recovery)" }))
        : Effect.succeed(row.system)
    )
  )

const probeAtStart = (node: Node.Node, config: RouterConfig.Resolved) =>
  askAtStart(node, config).pipe(
    Effect.map((row) => row.standby),
    Effect.catch((error) =>
      Effect.as(Effect.logWarning(`replica ${node.id} (${node.address}) is unavailable at start: ${describe(error)}`), false)
    )
  )

/** Manual topology: the configuration says who is who; the primary must answer. */
const manualTopology = (factory: NodeFactory) =>
  Effect.gen(function*() {
    const { config } = factory
    const primary = yield* makeNode(factory, "primary", "primary", config.primary, config.direct.primary)
    const replicas = yield* Effect.forEach(
      config.replicas,
      (url, i) => makeNode(factory, `replica-${i}`, "replica", url, config.direct.replicas[i])
    )
    const [systemIdentifier, healthy] = yield* Effect.all([
      checkPrimary(primary, config),
      Effect.forEach(replicas, (node) => probeAtStart(node, config), { concurrency: "unbounded" })
    ], { concurrency: "unbounded" })
    return { primary, replicas: replicas.map((node, i) => [node, healthy[i]!] as const), systemIdentifier }
  })

/** Per host, why discovery found no primary there (scrubbed of secrets by `describe`). */
const whyNotWritable = (answer: Result.Result<Identity, unknown>): string =>
  Result.isSuccess(answer) ? "is in recovery (a standby)" : `failed: ${describe(answer.failure)}`

/**
 * Auto topology: every host is asked, each on a connection of its own, before
 * any pool is made, so that each node's pool is made for its role; exactly
 * one must accept writes.
 */
const discoveredTopology = (factory: NodeFactory) =>
  Effect.gen(function*() {
    const { config } = factory
    const hosts = [config.primary, ...config.replicas]
    const direct = [config.direct.primary, ...config.direct.replicas]
    const answers = yield* Effect.forEach(hosts, (url) =>
      Effect.result(HealthMonitor.connectionQuery<Identity>(
        { url, applicationName: factory.clientOptions?.applicationName ?? config.applicationName },
        startTimeout(config),
        Catalog.identitySql
      )), { concurrency: "unbounded" })
    const writable = hosts.flatMap((_, i) => {
      const answer = answers[i]!
      return Result.isSuccess(answer) && !answer.success.standby ? [i] : []
    })
    if (writable.length !== 1) {
      const names = writable.map((i) => `node-${i}`)
      return yield* new PrimaryUnavailable({
        node: names.join(", ") || hosts.map(addressOf).join(", "),
        reason: writable.length === 0
          ? `no host accepts writes: ${
            hosts.map((url, i) => `${addressOf(url)} ${whyNotWritable(answers[i]!)}`).join("; ")
          }`
          : `split brain: ${names.join(" and ")} all accept writes`,
        ...(writable.length > 1 ? { conflicting: names } : {})
      })
    }
    const primaryAt = writable[0]!
    const system = (answers[primaryAt] as Result.Success<Identity, unknown>).success.system
    const nodes = yield* Effect.forEach(hosts, (url, i) =>
      makeNode(factory, `node-${i}`, i === primaryAt ? "primary" : "replica", url, direct[i]))
    const replicas = nodes.flatMap((node, i) => {
      if (i === primaryAt) return []
      const answer = answers[i]!
      return [[node, Result.isSuccess(answer) && answer.success.standby && answer.success.system === system] as const]
    })
    return { primary: nodes[primaryAt]!, replicas, systemIdentifier: system }
  })

/**
 * Who is who at start: the configuration says (manual), or every host is
 * asked and exactly one must accept writes (auto). Each replica comes with
 * whether it answered as a standby of the same cluster.
 * @internal
 */
export const startTopology = (factory: NodeFactory): Effect.Effect<
  {
    readonly primary: Node.Node
    readonly replicas: ReadonlyArray<readonly [Node.Node, boolean]>
    readonly systemIdentifier: string
  },
  PrimaryUnavailable
> => factory.config.discovery === "auto" ? discoveredTopology(factory) : manualTopology(factory)
