/** @internal */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Reactivity from "effect/reactivity/Reactivity"
import type * as Scope from "effect/Scope"
import * as SqlClient from "effect/sql/SqlClient"
import type * as Connection from "effect/sql/SqlConnection"
import type { SqlError } from "effect/sql/SqlError"
import type * as Node from "../../Node.js"
import type { PrimaryUnavailable, ReplicaNotCaughtUp } from "../../RouterError.js"
import type * as SqlRouter from "../../SqlRouter.js"
import * as Consistency from "../consistency.js"
import * as Membership from "../health/membership.js"
import * as NodeInternal from "../node.js"
import type { RouterState } from "../routerState.js"
import { observeFailure, peek, releaseReplica } from "../routing/decision.js"

// Leases: one session held for a scope, on the primary or a replica.

/** A client whose every statement, and transaction, runs on one leased session. */
const leaseClient = (state: RouterState, node: Node.Node, connection: Connection.Connection) => {
  const { compiler } = NodeInternal.transformsOf({})
  return SqlClient.make({
    driver: "pg",
    acquirer: Effect.succeed(connection),
    borrower: (f) => f(connection),
    transactionAcquirer: Effect.succeed(connection),
    compiler,
    spanAttributes: [["effect_sql_router.node", node.id]],
    begin: NodeInternal.begin(() => node.role === "replica"),
    commit: NodeInternal.commit,
    onCommitFailure: NodeInternal.onCommitFailure,
    isTransaction: NodeInternal.isTransaction,
    releaseSavepoint: (name) => `RELEASE SAVEPOINT ${name}`
  }).pipe(Effect.provideService(Reactivity.Reactivity, state.reactivity))
}

/** @internal */
export const makeLeases = (state: RouterState): Pick<SqlRouter.SqlRouter, "acquireRead" | "acquireWrite"> => {
  const { topology } = state
  const pickRead = Consistency.chooseRead(state)

  const lease = (node: Node.Node, origin: SqlRouter.Origin) =>
    Effect.flatMap(NodeInternal.internalsOf(node).pool.reserve, (session) =>
      Effect.map(
        leaseClient(state, node, NodeInternal.connectionOf(session, NodeInternal.internalsOf(node).prepare)),
        (client): SqlRouter.Lease => ({ origin, node, client })
      ))

  const acquireWrite: Effect.Effect<SqlRouter.Lease, SqlError | PrimaryUnavailable, Scope.Scope> = Effect.flatMap(
    Membership.primaryForWrite(state),
    (primary) =>
      Effect.tap(
        lease(primary, { _tag: "Primary" }),
        Effect.addFinalizer(() => Consistency.recordCommitOnNode(state, primary))
      )
  )

  const acquireRead: Effect.Effect<SqlRouter.Lease, SqlError | ReplicaNotCaughtUp | PrimaryUnavailable, Scope.Scope> =
    Effect.flatMap(
      Effect.acquireRelease(pickRead, (chosen) => Option.isSome(chosen) ? releaseReplica(chosen.value) : Effect.void),
      (chosen) =>
        Option.isNone(chosen)
          ? acquireWrite
          : lease(chosen.value.node, { _tag: "Replica", index: peek(topology.replicas).indexOf(chosen.value) }).pipe(
            Effect.tapCause((cause) => observeFailure(chosen.value, cause))
          )
    )

  return { acquireRead, acquireWrite }
}
