/** @internal */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import * as TxRef from "effect/TxRef"
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
import type { RouterState } from "../routerState.js"
import { currentRoute, inSession, observeFailure, peek, releaseReplica } from "../routing/decision.js"

// Regions: an effect run on one node (`withRead`, `withReplica`, `withWrite`,
// `transaction`, `readTransaction`), with that node's client provided.

/** What a region provides. @internal */
export type ProvidedBy = SqlClient.SqlClient | PgClient.PgClient

/** What a region on a node provides, built once per node: the node's region client. */
const nodeContexts = new WeakMap<Node.Node, Context.Context<ProvidedBy>>()
const contextOf = (state: RouterState, node: Node.Node): Context.Context<ProvidedBy> => {
  let context = nodeContexts.get(node)
  if (context === undefined) {
    // `SqlClient.make` only reads the Reactivity service it is given: synchronous.
    const client = Effect.runSync(RoutedClientInternal.makePinned(state, node))
    context = Context.make(SqlClient.SqlClient, client).pipe(Context.add(PgClient.PgClient, client))
    nodeContexts.set(node, context)
  }
  return context
}

/** The region client of `node`. @internal */
export const clientOf = (state: RouterState, node: Node.Node): PgClient.PgClient =>
  Context.get(contextOf(state, node), PgClient.PgClient)

/** The primary, read in one transaction. @internal */
export const currentPrimary = (topology: Topology.Topology) => Effect.tx(TxRef.get(topology.primary))

/** The effect with `node`'s client in its context. */
const provideNode = <A, E, R>(state: RouterState, effect: Effect.Effect<A, E, R>, node: Node.Node) =>
  Effect.updateContext(
    effect as Effect.Effect<A, E, never>,
    (previous: Context.Context<never>) => Context.merge(previous, contextOf(state, node)) as Context.Context<never>
  ) as Effect.Effect<A, E, Exclude<R, ProvidedBy>>

/**
 * A region on a replica: the in-flight count goes back when it ends and, on
 * failure, passive detection looks at why.
 */
const onReplica = <A, E, R>(
  state: RouterState,
  replica: Topology.Replica,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E, Exclude<R, ProvidedBy>> => {
  replica.node.served.reads++
  return provideNode(state, effect, replica.node).pipe(
    Effect.onExit((exit) =>
      exit._tag === "Failure"
        ? Effect.andThen(releaseReplica(replica), observeFailure(replica, exit.cause))
        : releaseReplica(replica)
    )
  )
}

/**
 * On the primary; a node that turned read-only under us means a failover:
 * re-discover and fail with PrimaryUnavailable, never retry. So does a
 * connection cut because the node stopped being the primary.
 */
const onWritable = <A, E, R>(
  state: RouterState,
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
          ? Membership.primaryTurnedReadOnly(state, node, error)
          : Effect.fail(Membership.switchedUnderWrite(node, error))
    )
  })

/**
 * A transaction on `node` with its client provided (`BEGIN READ ONLY` for a
 * read transaction, also on the primary); a refused COMMIT is the typed
 * `CommitFailed`.
 */
const transactionOn = <A, E, R>(
  state: RouterState,
  node: Node.Node,
  readOnly: boolean,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | SqlError | CommitFailed, Exclude<R, ProvidedBy>> => {
  const client = clientOf(state, node)
  const transaction = client.withTransaction(provideNode(state, effect, node))
  const begun = readOnly ? Effect.provideService(transaction, SqlClient.BeginTransaction, "BEGIN READ ONLY") : transaction
  return Effect.catchIf(
    begun,
    (error): error is SqlError => RoutedClientInternal.commitFailure(error) !== undefined,
    (error) => Effect.fail(RoutedClientInternal.commitFailure(error)!)
  ) as Effect.Effect<A, E | SqlError | CommitFailed, Exclude<R, ProvidedBy>>
}

/**
 * The client whose transaction the fiber is in, if any (the `SqlClient` in
 * context and its transaction): a region transaction inside it nests as a
 * savepoint on its connection, as `withTransaction` does, except that a
 * write transaction never nests into a read-only one.
 */
const enclosing = (
  fiber: Fiber.Fiber<unknown, unknown>,
  write: boolean
): SqlClient.SqlClient | undefined => {
  const outer = Context.getOrUndefined(fiber.context, SqlClient.SqlClient)
  if (outer === undefined) return undefined
  const current = Context.getOrUndefined(fiber.context, outer.transactionService)
  if (current === undefined) return undefined
  return write && NodeInternal.isReadOnlyTransaction(current[0]) ? undefined : outer
}

/** @internal */
export type Regions = Pick<SqlRouter.SqlRouter, "withRead" | "withReplica" | "withWrite" | "transaction" | "readTransaction">

/** @internal */
export const makeRegions = (state: RouterState): Regions => {
  const { topology } = state

  const onPrimary = <A, E, R>(effect: Effect.Effect<A, E, R>, intent: "reads" | "writes") => {
    const primary = peek(topology.primary)
    primary.served[intent]++
    return provideNode(state, effect, primary)
  }

  /** A replica for a read (the route, the session and staleness bounds decide), or none: the primary. */
  const pickRead = Consistency.chooseRead(state)

  const withRead = <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ): Effect.Effect<A, E | ReplicaNotCaughtUp, Exclude<R, ProvidedBy>> =>
    Effect.flatMap(pickRead, (chosen) =>
      Option.isSome(chosen)
        ? onReplica<A, E | ReplicaNotCaughtUp, R>(state, chosen.value, effect)
        : onPrimary<A, E | ReplicaNotCaughtUp, R>(effect, "reads"))

  const withReplica = <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ): Effect.Effect<A, E | NoReplicaAvailable | ReplicaNotCaughtUp, Exclude<R, ProvidedBy>> =>
    Effect.flatMap(Effect.provideService(pickRead, currentRoute, "replica"), (chosen) =>
      Option.isSome(chosen)
        ? onReplica<A, E | NoReplicaAvailable | ReplicaNotCaughtUp, R>(state, chosen.value, effect)
        : Effect.flatMap(
          Effect.tx(Effect.zip(TxRef.get(topology.replicas), Topology.countHealthy(topology))),
          ([replicas, healthy]) => Effect.fail(new NoReplicaAvailable({ configured: replicas.length, healthy }))
        ))

  /** Autocommit statements of the region committed as they ran: record the session's position after it. */
  const withWrite = <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ): Effect.Effect<A, E | PrimaryUnavailable, Exclude<R, ProvidedBy>> =>
    Effect.withFiber((fiber) => {
      const run = (primary: Node.Node) => {
        primary.served.writes++
        const region = onWritable(state, primary, provideNode(state, effect, primary))
        // Only a causal session needs the position after the region.
        return inSession(fiber) ? Effect.ensuring(region, Consistency.recordCommitOnNode(state, primary)) : region
      }
      // A split brain forbids writes: membership says why.
      return peek(topology.conflict).length > 0
        ? Effect.flatMap(Membership.primaryForWrite(state), run)
        : run(peek(topology.primary))
    })

  const transaction = <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ): Effect.Effect<A, E | SqlError | CommitFailed | PrimaryUnavailable, Exclude<R, ProvidedBy>> =>
    Effect.withFiber((fiber) => {
      const outer = enclosing(fiber, true)
      if (outer !== undefined) return outer.withTransaction(effect) as Effect.Effect<A, E | SqlError, Exclude<R, ProvidedBy>>
      return Effect.flatMap(Membership.primaryForWrite(state), (primary) => {
        primary.served.writes++
        return onWritable(state, primary, transactionOn(state, primary, false, effect))
      })
    })

  const readTransaction = <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ): Effect.Effect<A, E | SqlError | CommitFailed | ReplicaNotCaughtUp, Exclude<R, ProvidedBy>> =>
    Effect.withFiber((fiber) => {
      const outer = enclosing(fiber, false)
      return outer !== undefined
        ? outer.withTransaction(effect) as Effect.Effect<A, E | SqlError, Exclude<R, ProvidedBy>>
        : readTransactionAnew(effect)
    })

  const readTransactionAnew = <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ): Effect.Effect<A, E | SqlError | CommitFailed | ReplicaNotCaughtUp, Exclude<R, ProvidedBy>> =>
    Effect.flatMap(pickRead, (chosen) => {
      if (Option.isNone(chosen)) {
        return Effect.flatMap(currentPrimary(topology), (primary) => {
          primary.served.reads++
          return transactionOn(state, primary, true, effect)
        })
      }
      const replica = chosen.value
      replica.node.served.reads++
      return transactionOn<A, E | ReplicaNotCaughtUp, R>(state, replica.node, true, effect).pipe(
        Effect.onExit((exit) =>
          exit._tag === "Failure"
            ? Effect.andThen(releaseReplica(replica), observeFailure(replica, exit.cause))
            : releaseReplica(replica)
        )
      )
    })

  return { withRead, withReplica, withWrite, transaction, readTransaction }
}
