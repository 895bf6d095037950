/** @internal */
import type * as Connection from "@effect/sql/SqlConnection"
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as STM from "effect/STM"
import * as TRef from "effect/TRef"
import type * as Node from "../../Node.js"
import type { PrimaryUnavailable, ReplicaNotCaughtUp } from "../../RouterError.js"
import type * as SqlRouter from "../../SqlRouter.js"
import * as Consistency from "../consistency.js"
import * as Membership from "../health/membership.js"
import { makeClient } from "../routedClient/assembly.js"
import { observeFailure, unsafeRelease } from "../routing/decision.js"
import type { RouterState } from "../routerState.js"

// Leases: one connection held for a scope, on the primary or a replica.

/** A SqlClient over one reserved connection, for leases. */
const leaseClient = (internals: RouterState, node: Node.Node, connection: Connection.Connection): SqlClient.SqlClient => {
  const reserve = Effect.succeed(connection)
  return makeClient({
    reactivity: internals.reactivity,
    acquirer: reserve,
    reserve,
    compiler: PgClient.makeCompiler(),
    transformRows: undefined,
    spanAttributes: [["effect_sql_router.node", node.id]],
    transactions: { node: () => node.id, readOnly: node.role === "replica", reserve }
  })
}

/** @internal */
export const makeLeases = (internals: RouterState): Pick<SqlRouter.SqlRouter, "acquireRead" | "acquireWrite"> => {
  const { topology } = internals
  const pickRead = Consistency.chooseRead(internals)

  const lease = (node: Node.Node, origin: SqlRouter.Origin) =>
    Effect.map(node.client.reserve, (connection): SqlRouter.Lease => ({
      origin,
      node,
      client: leaseClient(internals, node, connection)
    }))

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

  return { acquireRead, acquireWrite }
}
