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
import * as Router from "./sqlRouter.js"
import * as Transaction from "./transaction.js"

type Run<A> = (connection: Connection.Connection) => Effect.Effect<A, SqlError>

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
  Router.statements.unsafeUpdate(1, labelsOf(node)[intent])
}

/**
 * The statement router: a `Connection` whose every call classifies its SQL
 * and runs it on the node the rules choose. @effect/sql uses it only outside
 * transactions; inside one, statements go to the transaction's connection.
 * @internal
 */
export const makeRouting = (internals: Router.Internals, classifier: Classifier.Classifier) => {
  const { topology } = internals

  const onPrimary = <A>(run: Run<A>, intent: Classifier.Intent): Effect.Effect<A, SqlError> =>
    Effect.flatMap(STM.commit(TRef.get(topology.primary)), (primary) => {
      count(primary, intent)
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

  /**
   * The safety net: a replica that refuses the statement as a write (25006)
   * hands it to the primary; a replica that is gone is taken out of rotation
   * and the read runs once more elsewhere. Only reads get here.
   */
  const read = <A>(run: Run<A>): Effect.Effect<A, SqlError> =>
    Effect.flatMap(Router.pickReplica(internals, internals.requirement), (chosen) => {
      if (Option.isNone(chosen)) return onPrimary(run, "read")
      const replica = chosen.value
      return Effect.catchAll(onReplica(replica, run), (error) => {
        if (isReadOnlyViolation(error)) return onPrimary(run, "write")
        if (!isConnectionError(error)) return Effect.fail(error)
        return Effect.zipRight(
          Router.observeFailure(replica, error),
          Effect.flatMap(Router.pickReplica(internals, internals.requirement), (next) =>
            Option.isSome(next) ? onReplica(next.value, run) : onPrimary(run, "read"))
        )
      })
    })

  const route = <A>(sql: string, run: Run<A>): Effect.Effect<A, SqlError> =>
    Effect.flatMap(Router.currentRouteValue, (mode) =>
      mode === "primary"
        ? onPrimary(run, classifier.classify(sql))
        : classifier.classify(sql) === "write"
        ? onPrimary(run, "write")
        : read(run))

  const routeStream = <A>(
    sql: string,
    open: (connection: Connection.Connection) => Stream.Stream<A, SqlError>
  ): Stream.Stream<A, SqlError> =>
    Stream.unwrapScoped(
      Effect.flatMap(Router.currentRouteValue, (mode) => {
        const intent = classifier.classify(sql)
        if (mode === "primary" || intent === "write") {
          return Effect.map(STM.commit(TRef.get(topology.primary)), (primary) => {
            count(primary, intent)
            return open(primary.connection)
          })
        }
        return Effect.map(
          Effect.acquireRelease(
            Router.pickReplica(internals, internals.requirement),
            (chosen) => Option.isSome(chosen) ? Router.releaseReplica(chosen.value) : Effect.void
          ),
          (chosen) => {
            const node = Option.isSome(chosen) ? chosen.value.node : undefined
            if (node === undefined) return Stream.unwrap(onPrimary((c) => Effect.succeed(open(c)), "read"))
            count(node, "read")
            return open(node.connection)
          }
        )
      })
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
    const reserve = Effect.flatMap(currentPrimary, (primary) => primary.client.reserve)
    const client = yield* SqlClient.make({
      acquirer: Effect.succeed(makeRouting(router, classifier)),
      transactionAcquirer: reserve,
      compiler: intentCompiler(PgClient.makeCompiler(options.transformQueryNames), classifier, intentSlot),
      spanAttributes: [["db.system.name", "postgresql"], ["db.router.routed", true], intentSlot]
    }).pipe(Effect.provideService(Reactivity.Reactivity, router.reactivity))
    const primaryNow = yield* currentPrimary
    return Object.assign(client, {
      withTransaction: Transaction.asSqlClientTransaction({
        node: () => "primary",
        readOnly: false,
        reserve
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
