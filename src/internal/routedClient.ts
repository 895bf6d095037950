/** @internal */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import type * as Connection from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import type * as Statement from "@effect/sql/Statement"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as STM from "effect/STM"
import * as Stream from "effect/Stream"
import * as TRef from "effect/TRef"
import * as Classifier from "../Classifier.js"
import type * as Node from "../Node.js"
import type * as Topology from "../Topology.js"
import { isConnectionError, isReadOnlyViolation } from "./errors.js"
import * as Consistency from "./consistency.js"
import * as Membership from "./membership.js"
import { statements } from "./metrics.js"
import * as Router from "./routing.js"
import * as Transaction from "./transaction.js"

type Run<A> = (connection: Connection.Connection) => Effect.Effect<A, SqlError>

/** Statements fail with SqlError; the router's reason travels as its cause. */
const asSqlError = (error: { readonly message: string }) => new SqlError({ cause: error, message: error.message })

/** Metric labels per node and intent, made once: the hot path allocates none. */
const labelsCache = new WeakMap<Node.Node, { readonly read: ReadonlyArray<MetricLabel.MetricLabel>; readonly write: ReadonlyArray<MetricLabel.MetricLabel> }>()
const labelsOf = (node: Node.Node) => {
  let labels = labelsCache.get(node)
  if (labels === undefined) {
    labels = {
      read: [MetricLabel.make("node", node.id), MetricLabel.make("intent", "read")],
      write: [MetricLabel.make("node", node.id), MetricLabel.make("intent", "write")]
    }
    labelsCache.set(node, labels)
  }
  return labels
}

const count = (node: Node.Node, intent: Classifier.Intent) => {
  if (intent === "read") node.served.reads++
  else node.served.writes++
  statements.unsafeUpdate(1, labelsOf(node)[intent])
}

/**
 * The statement router: a `Connection` whose every call classifies its SQL
 * and runs it on the node the rules choose. @effect/sql uses it only outside
 * transactions; inside one, statements go to the transaction's connection.
 * @internal
 */
export const makeRouting = (internals: Router.Internals, classifier: Classifier.Classifier) => {
  const { topology } = internals

  /** A read on the primary: no replica fits, or the region forces the primary. */
  const onPrimary = <A>(run: Run<A>): Effect.Effect<A, SqlError> =>
    Effect.flatMap(STM.commit(TRef.get(topology.primary)), (primary) => {
      count(primary, "read")
      return run(primary.connection)
    })

  const readTimeout = internals.config.readTimeout
  const timedOut = () =>
    new SqlError({ cause: new Error("router read timeout"), message: `No answer within ${Duration.format(readTimeout!)}` })
  const bounded = <A>(effect: Effect.Effect<A, SqlError>) =>
    readTimeout === undefined ? effect : Effect.timeoutFail(effect, { duration: readTimeout, onTimeout: timedOut })

  const onReplica = <A>(replica: Topology.Replica, run: Run<A>): Effect.Effect<A, SqlError> => {
    count(replica.node, "read")
    return Effect.ensuring(bounded(run(replica.node.connection)), Router.releaseReplica(replica))
  }

  /** Where a read goes; a session that cannot be served as configured fails the statement. */
  const chooseRead = Effect.mapError(Consistency.chooseRead(internals), asSqlError)
  const primaryForWrite = Effect.mapError(Membership.primaryForWrite(internals), asSqlError)

  /**
   * The safety net: a replica that refuses the statement as a write (25006)
   * hands it to the primary; a replica that is gone is taken out of rotation
   * and the read runs once more elsewhere. Only reads get here.
   */
  const read = <A>(run: Run<A>): Effect.Effect<A, SqlError> =>
    Effect.flatMap(chooseRead, (chosen) => {
      if (Option.isNone(chosen)) return onPrimary(run)
      const replica = chosen.value
      return Effect.catchAll(onReplica(replica, run), (error) => {
        if (isReadOnlyViolation(error)) return write(run)
        if (!isConnectionError(error)) return Effect.fail(error)
        return Effect.zipRight(
          Router.observeFailure(replica, error),
          Effect.flatMap(chooseRead, (next) => Option.isSome(next) ? onReplica(next.value, run) : onPrimary(run))
        )
      })
    })

  /**
   * A write goes to the primary, never anywhere else and never twice: a
   * primary that turned read-only (failover) triggers re-discovery and fails
   * the statement. In a causal session it records the position reads need.
   */
  const write = <A>(run: Run<A>): Effect.Effect<A, SqlError> =>
    Effect.flatMap(primaryForWrite, (primary) => {
      count(primary, "write")
      return run(primary.connection).pipe(
        Effect.catchIf(isReadOnlyViolation, (error) =>
          Effect.mapError(Membership.primaryTurnedReadOnly(internals, primary, error), asSqlError)),
        Effect.tap(() => Consistency.recordCommitOnNode(internals, primary))
      )
    })

  const route = <A>(sql: string, run: Run<A>): Effect.Effect<A, SqlError> =>
    classifier.classify(sql) === "write" ? write(run) : read(run)

  const routeStream = <A>(
    sql: string,
    open: (connection: Connection.Connection) => Stream.Stream<A, SqlError>
  ): Stream.Stream<A, SqlError> =>
    Stream.unwrapScoped(
      classifier.classify(sql) === "write"
        ? Effect.map(primaryForWrite, (primary) => {
          count(primary, "write")
          return open(primary.connection)
        })
        : Effect.map(
          Effect.acquireRelease(chooseRead, (chosen) => Option.isSome(chosen) ? Router.releaseReplica(chosen.value) : Effect.void),
          (chosen) => {
            if (Option.isNone(chosen)) return Stream.unwrap(onPrimary((c) => Effect.succeed(open(c))))
            count(chosen.value.node, "read")
            return open(chosen.value.node.connection)
          }
        )
    )

  const connection: Connection.Connection = {
    execute: (sql, params, transformRows) => route(sql, (c) => c.execute(sql, params, transformRows)),
    executeUnprepared: (sql, params, transformRows) => route(sql, (c) => c.executeUnprepared(sql, params, transformRows)),
    executeRaw: (sql, params) => route(sql, (c) => c.executeRaw(sql, params)),
    executeValues: (sql, params) => route(sql, (c) => c.executeValues(sql, params)),
    executeStream: (sql, params, transformRows) => routeStream(sql, (c) => c.executeStream(sql, params, transformRows))
  }
  return connection
}

/**
 * Classifies at compile time too, so that the `sql.execute` span carries the
 * statement's intent: @effect/sql reads a client's span attributes right after
 * compiling, in the same synchronous step, and we fill the slot in between.
 */
const intentCompiler = (
  base: Statement.Compiler,
  classifier: Classifier.Classifier,
  slot: [string, unknown]
): Statement.Compiler => {
  const wrap = (compiler: Statement.Compiler): Statement.Compiler => {
    const wrapped: Statement.Compiler = {
      dialect: compiler.dialect,
      compile: (statement, withoutTransform) => {
        const compiled = compiler.compile(statement, withoutTransform)
        slot[1] = classifier.classify(compiled[0])
        return compiled
      },
      get withoutTransform() {
        return wrap(compiler.withoutTransform)
      }
    }
    return wrapped
  }
  return wrap(base)
}

/** @internal */
export const make = (
  router: Router.Internals,
  options: { readonly transformQueryNames?: ((s: string) => string) | undefined } = {}
): Effect.Effect<PgClient.PgClient, never, Scope.Scope> =>
  Effect.gen(function*() {
    const classifier = Classifier.make({ sideEffectFunctions: router.config.sideEffectFunctions })
    const { topology } = router
    const currentPrimary = STM.commit(TRef.get(topology.primary))
    const intentSlot: [string, unknown] = ["db.router.intent", "write"]
    // The node a transaction runs on, for its span and a CommitFailed: the
    // primary at the time its connection was reserved.
    let transactionNode = "primary"
    const reserve = Effect.flatMap(
      Effect.mapError(Membership.primaryForWrite(router), asSqlError),
      (primary) => {
        transactionNode = primary.id
        return primary.client.reserve
      }
    )
    const client = yield* SqlClient.make({
      acquirer: Effect.succeed(makeRouting(router, classifier)),
      transactionAcquirer: reserve,
      compiler: intentCompiler(PgClient.makeCompiler(options.transformQueryNames), classifier, intentSlot),
      spanAttributes: [["db.system.name", "postgresql"], ["db.router.routed", true], intentSlot]
    }).pipe(Effect.provideService(Reactivity.Reactivity, router.reactivity))
    const primaryNow = yield* currentPrimary
    return Object.assign(client, {
      withTransaction: Transaction.asSqlClientTransaction({
        node: () => transactionNode,
        readOnly: false,
        reserve,
        commit: Consistency.commitRecording(router)
      }),
      [PgClient.TypeId]: PgClient.TypeId,
      config: primaryNow.client.config,
      json: primaryNow.client.json,
      listen: (channel: string) =>
        Stream.unwrap(Effect.map(currentPrimary, (primary) => primary.client.listen(channel))),
      // @effect/sql-pg 0.53 sends NOTIFY with a bind parameter, which PostgreSQL rejects.
      notify: (channel: string, payload: string) =>
        Effect.flatMap(currentPrimary, (primary) =>
          Effect.asVoid(primary.connection.execute("SELECT pg_notify($1, $2)", [channel, payload], undefined)))
    }) as PgClient.PgClient
  })
