/** @internal */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import type * as Connection from "@effect/sql/SqlConnection"
import type { SqlError } from "@effect/sql/SqlError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberRef from "effect/FiberRef"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as STM from "effect/STM"
import * as TRef from "effect/TRef"
import type * as HealthMonitor from "../HealthMonitor.js"
import type * as Node from "../Node.js"
import * as RouterConfig from "../RouterConfig.js"
import type { CommitFailed, ReplicaNotCaughtUp } from "../RouterError.js"
import { isReadOnlyViolation } from "./errors.js"
import { NoReplicaAvailable, PrimaryUnavailable, UnknownReplica } from "../RouterError.js"
import type * as SqlRouter from "../SqlRouter.js"
import * as Topology from "../Topology.js"
import { describe } from "./errors.js"
import * as HealthMonitorInternal from "./healthMonitor.js"
import * as Membership from "./membership.js"
import * as Catalog from "./catalog.js"
import * as RoutedClientInternal from "./routedClient.js"
import * as Consistency from "./consistency.js"
import { SessionTag } from "./consistency.js"
import type { ClientOptions, RouterState } from "./routerState.js"
import { configRequirement, currentRoute, observeFailure, peek, releaseReplica, unsafeRelease } from "./routing.js"
import * as Transaction from "./transaction.js"
import * as Waiting from "./waiting.js"

/** @internal */
export const tag = Context.GenericTag<SqlRouter.SqlRouter>("effect-sql-router/SqlRouter")

/** @internal */
export { healthTransitions, statements } from "./metrics.js"

/** @internal */
export type { RouterState } from "./routerState.js"

/** @internal */
export { configRequirement, currentRoute, observeFailure, pickReplica, releaseReplica, type Route } from "./routing.js"

type ProvidedBy = SqlClient.SqlClient | PgClient.PgClient

/** What a region on a node provides, built once per node: the node's lean client. */
const nodeContexts = new WeakMap<Node.Node, Context.Context<ProvidedBy>>()
const contextOf = (state: RouterState, node: Node.Node): Context.Context<ProvidedBy> => {
  let context = nodeContexts.get(node)
  if (context === undefined) {
    const client = RoutedClientInternal.makePinned(state, node)
    context = Context.make(SqlClient.SqlClient, client as SqlClient.SqlClient).pipe(
      Context.add(PgClient.PgClient, client)
    )
    nodeContexts.set(node, context)
  }
  return context
}

/**
 * The fiber's context with a node's client in it. Contexts are immutable, so
 * the merge is kept per (context, node): a region entered from the same
 * context (one runtime's `runPromise`, or a loop in one fiber) reuses it
 * instead of copying the context's map on every region.
 */
const merged = new WeakMap<Context.Context<never>, WeakMap<Node.Node, Context.Context<any>>>()
const withNodeContext = (state: RouterState, previous: Context.Context<never>, node: Node.Node): Context.Context<any> => {
  let byNode = merged.get(previous)
  if (byNode === undefined) {
    byNode = new WeakMap()
    merged.set(previous, byNode)
  }
  let context = byNode.get(node)
  if (context === undefined) {
    context = Context.merge(previous, contextOf(state, node))
    byNode.set(node, context)
  }
  return context
}

const currentPrimary = (topology: Topology.Topology) => STM.commit(TRef.get(topology.primary))

const nodeStats = (node: Node.Node): SqlRouter.NodeStats => ({
  id: node.id,
  role: node.role,
  address: node.address,
  pool: node.stats(),
  served: { reads: node.served.reads, writes: node.served.writes }
})

/** A SqlClient over one reserved connection, for leases. */
const leaseClient = (
  internals: RouterState,
  node: Node.Node,
  connection: Connection.Connection
): Effect.Effect<SqlClient.SqlClient> =>
  Effect.map(
    SqlClient.make({
      acquirer: Effect.succeed(connection),
      compiler: PgClient.makeCompiler(),
      spanAttributes: [["effect_sql_router.node", node.id]]
    }).pipe(Effect.provideService(Reactivity.Reactivity, internals.reactivity)),
    (client) => {
      ;(client as { withTransaction: SqlClient.SqlClient["withTransaction"] }).withTransaction = Transaction
        .asSqlClientTransaction({ node: () => node.id, readOnly: node.role === "replica", reserve: Effect.succeed(connection) })
      return client
    }
  )

/** @internal */
export const fromState = (internals: RouterState): SqlRouter.SqlRouter => {
  const { config, topology } = internals
  const slowStartMillis = config.health.slowStart === undefined ? undefined : Duration.toMillis(config.health.slowStart)

  const provideNode = <A, E, R>(effect: Effect.Effect<A, E, R>, node: Node.Node) =>
    Effect.locallyWith(
      effect,
      FiberRef.currentContext,
      (previous) => withNodeContext(internals, previous, node)
    ) as Effect.Effect<A, E, Exclude<R, ProvidedBy>>

  const findReplica = (replica: number | string) =>
    Effect.flatMap(STM.commit(TRef.get(topology.replicas)), (replicas) => {
      const found = typeof replica === "number" ? replicas[replica] : replicas.find((r) => r.node.id === replica)
      return found ? Effect.succeed(found) : Effect.fail(new UnknownReplica({ replica }))
    })

  /**
   * A region on a replica: one exit handler gives the in-flight count back
   * (without a second STM commit) and, on failure, applies passive detection.
   */
  const onReplica = <A, E, R>(
    replica: Topology.Replica,
    effect: Effect.Effect<A, E, R>
  ): Effect.Effect<A, E, Exclude<R, ProvidedBy>> => {
    replica.node.served.reads++
    // One uninterruptible frame for both jobs of the region's end: restoring
    // the context (what `Effect.provide` does with a second frame) and giving
    // the in-flight count back, with passive detection on failure.
    return Effect.withFiberRuntime<A, E, Exclude<R, ProvidedBy>>((fiber) => {
      const runtime = fiber as unknown as { setFiberRef: <X>(ref: FiberRef.FiberRef<X>, value: X) => void }
      const previous = fiber.getFiberRef(FiberRef.currentContext)
      const leave = () => {
        runtime.setFiberRef(FiberRef.currentContext, previous)
        unsafeRelease(replica)
      }
      return Effect.uninterruptibleMask((restore) => {
        runtime.setFiberRef(FiberRef.currentContext, withNodeContext(internals, previous, replica.node))
        return Effect.matchCauseEffect(restore(effect as Effect.Effect<A, E, never>), {
          onFailure: (cause) => {
            leave()
            return Effect.zipRight(observeFailure(replica, cause), Effect.failCause(cause))
          },
          onSuccess: (value) => {
            leave()
            return Effect.succeed(value)
          }
        })
      })
    })
  }

  const onPrimary = <A, E, R>(effect: Effect.Effect<A, E, R>, intent: "reads" | "writes") => {
    const primary = peek(topology.primary)
    primary.served[intent]++
    return provideNode(effect, primary)
  }

  /** A replica for a read (the route, the session and staleness bounds decide), or none: the primary. */
  const pickRead = Consistency.chooseRead(internals)

  const withRead = <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ): Effect.Effect<A, E | ReplicaNotCaughtUp, Exclude<R, ProvidedBy>> =>
    Effect.flatMap(pickRead, (chosen) =>
      Option.isSome(chosen)
        ? onReplica<A, E | ReplicaNotCaughtUp, R>(chosen.value, effect)
        : onPrimary<A, E | ReplicaNotCaughtUp, R>(effect, "reads"))

  const withReplica = <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ): Effect.Effect<A, E | NoReplicaAvailable | ReplicaNotCaughtUp, Exclude<R, ProvidedBy>> =>
    Effect.flatMap(Effect.locally(pickRead, currentRoute, "replica"), (chosen) =>
      Option.isSome(chosen)
        ? onReplica<A, E | NoReplicaAvailable | ReplicaNotCaughtUp, R>(chosen.value, effect)
        : Effect.flatMap(
          STM.commit(STM.zip(TRef.get(topology.replicas), Topology.countHealthy(topology))),
          ([replicas, healthy]) => Effect.fail(new NoReplicaAvailable({ configured: replicas.length, healthy }))
        ))

  /**
   * On the primary; a node that turned read-only under us means a failover:
   * re-discover and fail with PrimaryUnavailable, never retry.
   */
  const onWritable = <A, E, R>(
    node: Node.Node,
    effect: Effect.Effect<A, E, R>
  ): Effect.Effect<A, E | PrimaryUnavailable, R> =>
    Effect.catchIf(
      effect,
      (error): error is E => isReadOnlyViolation(error),
      (error) => Membership.primaryTurnedReadOnly(internals, node, error)
    )

  /** Autocommit statements of the region committed as they ran: record the session's position after it. */
  const withWrite = <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ): Effect.Effect<A, E | PrimaryUnavailable, Exclude<R, ProvidedBy>> =>
    Effect.withFiberRuntime((fiber) => {
      const run = (primary: Node.Node) => {
        primary.served.writes++
        const region = onWritable(primary, provideNode(effect, primary))
        // Only a causal session needs the position after the region.
        return fiber.currentContext.unsafeMap.has(SessionTag.key)
          ? Effect.ensuring(region, Consistency.recordCommitOnNode(internals, primary))
          : region
      }
      // A split brain forbids writes: the STM check says why.
      return peek(topology.conflict).length > 0
        ? Effect.flatMap(Membership.primaryForWrite(internals), run)
        : run(peek(topology.primary))
    })

  const transactionOn = <A, E, R>(node: Node.Node, readOnly: boolean, effect: Effect.Effect<A, E, R>) =>
    Transaction.make({
      node: () => node.id,
      readOnly,
      reserve: node.client.reserve,
      commit: readOnly ? undefined : Consistency.commitRecording(internals)
    })(provideNode(effect, node))

  const transaction = <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ): Effect.Effect<A, E | SqlError | CommitFailed | PrimaryUnavailable, Exclude<R, ProvidedBy>> =>
    Effect.flatMap(Membership.primaryForWrite(internals), (primary) => {
      primary.served.writes++
      return onWritable(primary, transactionOn(primary, false, effect))
    })

  const readTransaction = <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ): Effect.Effect<A, E | SqlError | CommitFailed | ReplicaNotCaughtUp, Exclude<R, ProvidedBy>> =>
    Effect.flatMap(pickRead, (chosen) => {
      if (Option.isNone(chosen)) {
        return Effect.flatMap(currentPrimary(topology), (primary) => {
          primary.served.reads++
          return transactionOn(primary, true, effect)
        })
      }
      const replica = chosen.value
      replica.node.served.reads++
      return transactionOn<A, E | ReplicaNotCaughtUp, R>(replica.node, true, effect).pipe(
        Effect.tapErrorCause((cause) => observeFailure(replica, cause)),
        Effect.ensuring(releaseReplica(replica))
      )
    })

  const lease = (node: Node.Node, origin: SqlRouter.Origin) =>
    Effect.flatMap(node.client.reserve, (connection) =>
      Effect.map(leaseClient(internals, node, connection), (client): SqlRouter.Lease => ({ origin, node, client })))

  const acquireWrite: Effect.Effect<SqlRouter.Lease, SqlError | PrimaryUnavailable, Scope.Scope> = Effect.flatMap(
    Membership.primaryForWrite(internals),
    (primary) =>
      Effect.zipLeft(
        lease(primary, { _tag: "Primary" }),
        Effect.addFinalizer(() => Consistency.recordCommitOnNode(internals, primary))
      )
  )

  const acquireRead: Effect.Effect<SqlRouter.Lease, SqlError | ReplicaNotCaughtUp | PrimaryUnavailable, Scope.Scope> = Effect.flatMap(
    Effect.acquireRelease(
      pickRead,
      (chosen) => Option.isSome(chosen) ? Effect.sync(() => unsafeRelease(chosen.value)) : Effect.void
    ),
    (chosen) =>
      Option.isNone(chosen)
        ? acquireWrite
        : Effect.flatMap(STM.commit(TRef.get(topology.replicas)), (replicas) =>
          lease(chosen.value.node, { _tag: "Replica", index: replicas.indexOf(chosen.value) }).pipe(
            Effect.tapErrorCause((cause) => observeFailure(chosen.value, cause))
          ))
  )

  const setManual = (replica: number | string, down: boolean) =>
    Effect.flatMap(findReplica(replica), (found) =>
      // A manual "healthy" is taken at its word now; probes may disagree later.
      STM.commit(TRef.update(found.health, (health) =>
        down
          ? { ...health, markedDown: true }
          : Topology.inRotation(health)
          ? { ...health, markedDown: false, up: true, streak: 0 }
          // Back from out of rotation: slow start (if on) from now.
          : Topology.withRamp({ ...health, markedDown: false, up: true, streak: 0 }, slowStartMillis, Date.now())
      )).pipe(
        // Marked out: the reads waiting on it run elsewhere now.
        Effect.zipRight(Effect.sync(() => down && Waiting.releaseWaiting(found))),
        Effect.zipRight(Effect.logInfo(`replica ${found.node.id} marked ${down ? "unhealthy" : "healthy"} by hand`))
      ))

  const stats: Effect.Effect<SqlRouter.Stats> = Effect.flatMap(
    STM.commit(STM.gen(function*() {
      const primary = yield* TRef.get(topology.primary)
      const replicas = yield* TRef.get(topology.replicas)
      const states = yield* STM.forEach(replicas, (replica) =>
        STM.all({ healthy: Topology.isHealthy(replica), inFlight: TRef.get(replica.inFlight) }))
      const barrier = yield* TRef.get(internals.schemaBarrier)
      return { primary, replicas, states, barrier }
    })),
    ({ barrier, primary, replicas, states }) =>
      Effect.succeed({
        primary: nodeStats(primary),
        replicas: replicas.map((replica, i) => ({ ...nodeStats(replica.node), ...states[i]! })),
        healthyReplicaCount: states.filter((s) => s.healthy).length,
        schemaBarrier: barrier === undefined ? undefined : HealthMonitorInternal.formatLsn(barrier)
      })
  )

  const replicaStatus: Effect.Effect<ReadonlyArray<HealthMonitor.NodeStatus>> = STM.commit(STM.gen(function*() {
    const primary = yield* TRef.get(topology.primary)
    const primaryLsn = yield* TRef.get(topology.primaryLsn)
    const replicas = yield* TRef.get(topology.replicas)
    const statuses: Array<HealthMonitor.NodeStatus> = [{
      id: primary.id,
      role: "primary",
      address: primary.address,
      healthy: true,
      markedDown: false,
      lagBytes: 0,
      lagMillis: 0,
      lsn: primaryLsn === undefined ? undefined : HealthMonitorInternal.formatLsn(primaryLsn),
      inFlight: 0,
      lastError: undefined,
      lastProbeAt: undefined,
      state: "Primary"
    }]
    for (const replica of replicas) {
      const probe = yield* TRef.get(replica.probe)
      statuses.push({
        id: replica.node.id,
        role: "replica",
        address: replica.node.address,
        healthy: yield* Topology.isHealthy(replica),
        markedDown: (yield* TRef.get(replica.health)).markedDown,
        lagBytes: probe?.lagBytes,
        lagMillis: probe?.lagMillis,
        lsn: probe?.replayLsn === undefined ? undefined : HealthMonitorInternal.formatLsn(probe.replayLsn),
        inFlight: yield* TRef.get(replica.inFlight),
        lastError: probe?.error,
        lastProbeAt: probe?.at,
        state: probe?.state?._tag
      })
    }
    return statuses
  }))

  return {
    config,
    systemIdentifier: internals.systemIdentifier,
    topology,
    replicaStatus,
    primary: currentPrimary(topology),
    replicas: Effect.map(STM.commit(TRef.get(topology.replicas)), (rs) => rs.map((r) => r.node)),
    withRead,
    withReplica,
    withWrite,
    withPrimary: withWrite,
    currentConfig: Effect.map(Membership.allNodes(topology), ([primary, ...replicas]): RouterConfig.RouterConfig => {
      const { discovery, primary: _p, replicas: _r, ...rest } = config
      return discovery === "auto"
        ? { ...rest, discovery, hosts: [primary!, ...replicas].map((n) => n.url) }
        : { ...rest, discovery, primary: primary!.url, replicas: replicas.map((n) => n.url) }
    }),
    addReplica: (url, options) => Membership.addReplica(internals, url, options?.id),
    removeReplica: (replica) => Membership.removeReplica(internals, replica),
    promote: (replica, options) => Membership.promote(internals, replica, options?.maxLag ?? 0),
    transaction,
    readTransaction,
    acquireRead,
    acquireWrite,
    markReplicaHealthy: (replica) => setManual(replica, false),
    markReplicaUnhealthy: (replica) => setManual(replica, true),
    countHealthyReplicas: STM.commit(Topology.countHealthy(topology)),
    hasReplicas: Effect.map(STM.commit(TRef.get(topology.replicas)), (rs) => rs.length > 0),
    stats
  }
}

/** Asks a node at start whether it is a standby, and its cluster's identity. */
const askAtStart = (node: Node.Node, timeout: Duration.Duration) =>
  Effect.tryPromise(() =>
    node.pool.query<{ standby: boolean; system: string }>(Catalog.identitySql)
  ).pipe(
    Effect.timeoutFail({
      duration: Duration.sum(timeout, Duration.millis(500)),
      onTimeout: () => new Error(`no answer within ${Duration.format(timeout)}`)
    }),
    Effect.map((result) => result.rows[0]!)
  )

const checkPrimary = (node: Node.Node, timeout: Duration.Duration) =>
  askAtStart(node, timeout).pipe(
    Effect.mapError((cause) => new PrimaryUnavailable({ node: node.address, reason: describe(cause), cause })),
    Effect.flatMap((row) =>
      row.standby
        ? Effect.fail(new PrimaryUnavailable({ node: node.address, reason: "the server is a standby (in recovery)" }))
        : Effect.succeed(row.system)
    )
  )

const probeAtStart = (node: Node.Node, timeout: Duration.Duration) =>
  askAtStart(node, timeout).pipe(
    Effect.map((row) => row.standby),
    Effect.catchAll((error) =>
      Effect.as(Effect.logWarning(`replica ${node.id} (${node.address}) is unavailable at start: ${describe(error)}`), false)
    )
  )

/** Manual topology: the configuration says who is who; the primary must answer. */
const manualTopology = (factory: Membership.NodeFactory) =>
  Effect.gen(function*() {
    const { config } = factory
    const primary = yield* Membership.makeNode(factory, "primary", "primary", config.primary)
    const replicas = yield* Effect.forEach(config.replicas, (url, i) =>
      Membership.makeNode(factory, `replica-${i}`, "replica", url))
    const [systemIdentifier, healthy] = yield* Effect.all([
      checkPrimary(primary, config.connectTimeout),
      Effect.forEach(replicas, (node) => probeAtStart(node, config.connectTimeout), { concurrency: "unbounded" })
    ], { concurrency: "unbounded" })
    return { primary, replicas: replicas.map((node, i) => [node, healthy[i]!] as const), systemIdentifier }
  })

/** Per host, why discovery found no primary there (scrubbed of secrets by `describe`). */
const whyNotWritable = (answer: Either.Either<{ readonly standby: boolean }, unknown>): string =>
  Either.isRight(answer) ? "is in recovery (a standby)" : `failed: ${describe(answer.left)}`

/** Auto topology: every host is asked; exactly one must accept writes. */
const discoveredTopology = (factory: Membership.NodeFactory) =>
  Effect.gen(function*() {
    const { config } = factory
    const nodes = yield* Effect.forEach([config.primary, ...config.replicas], (url, i) =>
      Membership.makeNode(factory, `node-${i}`, "replica", url))
    const answers = yield* Effect.forEach(nodes, (node) => Effect.either(askAtStart(node, config.connectTimeout)), {
      concurrency: "unbounded"
    })
    const writable = nodes.filter((_, i) => Either.isRight(answers[i]!) && !answers[i]!.right.standby)
    if (writable.length !== 1) {
      const names = writable.map((node) => node.id)
      return yield* new PrimaryUnavailable({
        node: names.join(", ") || nodes.map((node) => node.address).join(", "),
        reason: writable.length === 0
          ? `no host accepts writes: ${nodes.map((node, i) => `${node.address} ${whyNotWritable(answers[i]!)}`).join("; ")}`
          : `split brain: ${names.join(" and ")} all accept writes`,
        ...(writable.length > 1 ? { conflicting: names } : {})
      })
    }
    const primary = writable[0]!
    Membership.setRole(factory.config, primary, "primary")
    const system = Either.getOrThrow(answers[nodes.indexOf(primary)]!).system
    const replicas = nodes.flatMap((node, i) => {
      if (node === primary) return []
      const answer = answers[i]!
      return [[node, Either.isRight(answer) && answer.right.standby && answer.right.system === system] as const]
    })
    return { primary, replicas, systemIdentifier: system }
  })

/** @internal */
export const makeState = (
  input: RouterConfig.RouterConfig,
  clientOptions?: ClientOptions | undefined
): Effect.Effect<RouterState, SqlRouter.BuildError, Scope.Scope> =>
  Effect.gen(function*() {
    const config = yield* RouterConfig.resolve(input)
    const reactivity = yield* Effect.serviceOption(Reactivity.Reactivity).pipe(
      Effect.flatMap(Option.match({ onSome: Effect.succeed, onNone: () => Reactivity.make }))
    )
    const scope = yield* Effect.scope
    const factory: Membership.NodeFactory = { config, reactivity, scope, nodeScopes: new Map(), clientOptions }
    const start = yield* (config.discovery === "auto" ? discoveredTopology(factory) : manualTopology(factory))
    const topology = yield* STM.commit(
      STM.flatMap(
        STM.forEach(start.replicas, ([node, healthy]) => Topology.makeReplica(node, healthy)),
        (replicas) => Topology.make(start.primary, replicas)
      )
    )
    const base = HealthMonitorInternal.makeProbes(topology, config.health.timeout)
    // With discovery, a replica that accepts writes was promoted by someone
    // else: discovery learns now, not at its next round, whether the primary
    // moved or two nodes accept writes (a split brain, where reads must leave
    // the old primary).
    const probes: HealthMonitorInternal.Probes = config.discovery === "auto"
      ? {
        ...base,
        replica: (node) =>
          Effect.tap(base.replica(node), (judged) =>
            judged.state?._tag === "Writable" && peek(topology.conflict).length === 0
              ? Effect.forkIn(Membership.discoverOnce(internals), scope)
              : Effect.void)
      }
      : base
    const internals: RouterState = {
      ...factory,
      topology,
      requirement: configRequirement(config),
      probes,
      systemIdentifier: start.systemIdentifier,
      schemaBarrier: yield* TRef.make<bigint | undefined>(undefined)
    }
    if (config.health.enabled) {
      // First entry: a replica is in rotation only if it follows the primary.
      yield* HealthMonitorInternal.onClock(config.health, HealthMonitorInternal.admitAtStart(topology, probes))
      yield* HealthMonitorInternal.start({
        topology,
        health: config.health,
        probe: probes.replica,
        probePrimary: probes.primary,
        primaryLoop: config.discovery === "auto" ? Membership.discoverOnce(internals) : undefined
      })
    }
    return internals
  })

/** @internal */
export const make = (input: RouterConfig.RouterConfig) =>
  Effect.map(makeState(input), fromState)

/** @internal */
export const context = (router: SqlRouter.SqlRouter, client: PgClient.PgClient) =>
  Context.make(tag, router).pipe(
    Context.add(SqlClient.SqlClient, client as SqlClient.SqlClient),
    Context.add(PgClient.PgClient, client)
  )
