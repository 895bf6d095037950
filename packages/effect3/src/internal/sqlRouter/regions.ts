/** @internal */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as Option from "effect/Option"
import * as STM from "effect/STM"
import * as TRef from "effect/TRef"
import type * as Node from "../../Node.js"
import type { CommitFailed, PrimaryUnavailable, ReplicaNotCaughtUp } from "../../RouterError.js"
import { NoReplicaAvailable } from "../../RouterError.js"
import type * as SqlRouter from "../../SqlRouter.js"
import * as Topology from "../../Topology.js"
import * as Consistency from "../consistency.js"
import { isConnectionError, isReadOnlyViolation } from "../errors.js"
import * as Membership from "../health/membership.js"
import * as NodeInternal from "../node.js"
import * as RoutedClientInternal from "../routedClient.js"
import { currentRoute, observeFailure, peek, releaseReplica, unsafeRelease } from "../routing/decision.js"
import * as Transaction from "../transaction.js"
import type { RouterState } from "../routerState.js"
import { SessionTag } from "../consistency.js"

// Regions: an effect run on one node (`withRead`, `withReplica`, `withWrite`,
// `transaction`, `readTransaction`), with that node's lean client provided.

/** What a region provides. @internal */
export type ProvidedBy = SqlClient.SqlClient | PgClient.PgClient

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

/** The primary, read in one STM commit. @internal */
export const currentPrimary = (topology: Topology.Topology) => STM.commit(TRef.get(topology.primary))

/** The effect with `node`'s client in its context. */
const provideNode = <A, E, R>(internals: RouterState, effect: Effect.Effect<A, E, R>, node: Node.Node) =>
  Effect.locallyWith(
    effect,
    FiberRef.currentContext,
    (previous) => withNodeContext(internals, previous, node)
  ) as Effect.Effect<A, E, Exclude<R, ProvidedBy>>

/**
 * A region on a replica: one exit handler gives the in-flight count back
 * (without a second STM commit) and, on failure, applies passive detection.
 */
const onReplica = <A, E, R>(
  internals: RouterState,
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

/**
 * On the primary; a node that turned read-only under us means a failover:
 * re-discover and fail with PrimaryUnavailable, never retry. So does a
 * connection cut because the node stopped being the primary.
 */
const onWritable = <A, E, R>(
  internals: RouterState,
  node: Node.Node,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | PrimaryUnavailable, R> =>
  Effect.suspend(() => {
    // A connection error after the node's connections were cut at a switch of primary: typed, never run again.
    const severs = NodeInternal.seversOf(node)
    const switched = (error: unknown) => NodeInternal.seversOf(node) !== severs && isConnectionError(error)
    return Effect.catchIf(
      effect,
      (error): error is E => isReadOnlyViolation(error) || switched(error),
      (error) =>
        isReadOnlyViolation(error)
          ? Membership.primaryTurnedReadOnly(internals, node, error)
          : Effect.fail(Membership.switchedUnderWrite(node, error))
    )
  })

/** A transaction on `node`, with its client provided; a write transaction records its commit's position. */
const transactionOn = <A, E, R>(
  internals: RouterState,
  node: Node.Node,
  readOnly: boolean,
  effect: Effect.Effect<A, E, R>
) =>
  Transaction.make({
    node: () => node.id,
    readOnly,
    reserve: node.client.reserve,
    commit: readOnly ? undefined : Consistency.commitRecording(internals)
  })(provideNode(internals, effect, node))

/** @internal */
export type Regions = Pick<SqlRouter.SqlRouter, "withRead" | "withReplica" | "withWrite" | "transaction" | "readTransaction">

/** @internal */
export const makeRegions = (internals: RouterState): Regions => {
  const { topology } = internals

  const onPrimary = <A, E, R>(effect: Effect.Effect<A, E, R>, intent: "reads" | "writes") => {
    const primary = peek(topology.primary)
    primary.served[intent]++
    return provideNode(internals, effect, primary)
  }

  /** A replica for a read (the route, the session and staleness bounds decide), or none: the primary. */
  const pickRead = Consistency.chooseRead(internals)

  const withRead = <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ): Effect.Effect<A, E | ReplicaNotCaughtUp, Exclude<R, ProvidedBy>> =>
    Effect.flatMap(pickRead, (chosen) =>
      Option.isSome(chosen)
        ? onReplica<A, E | ReplicaNotCaughtUp, R>(internals, chosen.value, effect)
        : onPrimary<A, E | ReplicaNotCaughtUp, R>(effect, "reads"))

  const withReplica = <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ): Effect.Effect<A, E | NoReplicaAvailable | ReplicaNotCaughtUp, Exclude<R, ProvidedBy>> =>
    Effect.flatMap(Effect.locally(pickRead, currentRoute, "replica"), (chosen) =>
      Option.isSome(chosen)
        ? onReplica<A, E | NoReplicaAvailable | ReplicaNotCaughtUp, R>(internals, chosen.value, effect)
        : Effect.flatMap(
          STM.commit(STM.zip(TRef.get(topology.replicas), Topology.countHealthy(topology))),
          ([replicas, healthy]) => Effect.fail(new NoReplicaAvailable({ configured: replicas.length, healthy }))
        ))

  /** Autocommit statements of the region committed as they ran: record the session's position after it. */
  const withWrite = <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ): Effect.Effect<A, E | PrimaryUnavailable, Exclude<R, ProvidedBy>> =>
    Effect.withFiberRuntime((fiber) => {
      const run = (primary: Node.Node) => {
        primary.served.writes++
        const region = onWritable(internals, primary, provideNode(internals, effect, primary))
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

  const transaction = <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ): Effect.Effect<A, E | SqlError | CommitFailed | PrimaryUnavailable, Exclude<R, ProvidedBy>> =>
    Effect.flatMap(Membership.primaryForWrite(internals), (primary) => {
      primary.served.writes++
      return onWritable(internals, primary, transactionOn(internals, primary, false, effect))
    })

  const readTransaction = <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ): Effect.Effect<A, E | SqlError | CommitFailed | ReplicaNotCaughtUp, Exclude<R, ProvidedBy>> =>
    Effect.flatMap(pickRead, (chosen) => {
      if (Option.isNone(chosen)) {
        return Effect.flatMap(currentPrimary(topology), (primary) => {
          primary.served.reads++
          return transactionOn(internals, primary, true, effect)
        })
      }
      const replica = chosen.value
      replica.node.served.reads++
      return transactionOn<A, E | ReplicaNotCaughtUp, R>(internals, replica.node, true, effect).pipe(
        Effect.tapErrorCause((cause) => observeFailure(replica, cause)),
        Effect.ensuring(releaseReplica(replica))
      )
    })

  return { withRead, withReplica, withWrite, transaction, readTransaction }
}
