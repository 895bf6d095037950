/** @internal */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import type * as Connection from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import * as Statement from "@effect/sql/Statement"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Tracer from "effect/Tracer"
import type Pg from "pg"
import * as Classifier from "../Classifier.js"
import type * as Node from "../Node.js"
import { WriteOutcomeUnknown } from "../RouterError.js"
import type * as Topology from "../Topology.js"
import * as Catalog from "./catalog.js"
import * as Consistency from "./consistency.js"
import { isReadOnlyViolation } from "./errors.js"
import * as Membership from "./membership.js"
import { hedgedReads, statements } from "./metrics.js"
import * as NodeInternal from "./node.js"
import * as Routing from "./routing.js"
import * as Transaction from "./transaction.js"
import * as Waiting from "./waiting.js"

// The routed client owns its hot path: a statement compiles, is classified
// (cached), picks its node (at most one STM commit, pick and in-flight
// together) and runs as one `Effect.async` on that node's pg.Pool, without a
// per-statement canceler, scope or span. The general path (@effect/sql's
// Statement machinery over a routing Connection) remains for what the fast
// path does not cover: streams and a `Statement.withTransformer` in scope.

type Rows = <A extends object>(rows: ReadonlyArray<A>) => ReadonlyArray<A>

/** What a statement is asked for: @effect/sql's operation names, as on its spans. */
type Op = "execute" | "executeValues" | "executeRaw" | "executeUnprepared" | "executeWithoutTransform"

/** Statements fail with SqlError; the router's reason travels as its cause. */
const asSqlError = (error: { readonly message: string }) => new SqlError({ cause: error, message: error.message })

/** Per node, made once: metric labels and span attributes. The hot path allocates none. */
interface NodeFacts {
  readonly read: ReadonlyArray<MetricLabel.MetricLabel>
  readonly write: ReadonlyArray<MetricLabel.MetricLabel>
  readonly node: ReadonlyArray<MetricLabel.MetricLabel>
  readonly host: string
  readonly port: number
  readonly database: string
}
const factsCache = new WeakMap<Node.Node, NodeFacts>()
const factsOf = (node: Node.Node): NodeFacts => {
  let facts = factsCache.get(node)
  if (facts === undefined) {
    const options = node.pool.options as Pg.PoolConfig & { connectionString?: string }
    let database = options.database ?? ""
    try {
      if (options.connectionString) database = decodeURIComponent(new URL(options.connectionString).pathname.slice(1))
    } catch {
      // an address we cannot parse names no database
    }
    const colon = node.address.lastIndexOf(":")
    facts = {
      read: [MetricLabel.make("node", node.id), MetricLabel.make("intent", "read")],
      write: [MetricLabel.make("node", node.id), MetricLabel.make("intent", "write")],
      node: [MetricLabel.make("node", node.id)],
      host: node.address.slice(0, colon),
      port: Number(node.address.slice(colon + 1)),
      database
    }
    factsCache.set(node, facts)
  }
  return facts
}

/** One attempt of a hedged read: the statement on one replica. */
interface Attempt {
  readonly replica: Topology.Replica
  running: NodeInternal.Running | undefined
  /** Its `readTimeout`. */
  timer: ReturnType<typeof setTimeout> | undefined
  /** Its answer will not settle the read: it came, or the attempt failed, timed out, was evicted or lost. */
  over: boolean
}

const count = (node: Node.Node, intent: Classifier.Intent) => {
  if (intent === "read") node.served.reads++
  else node.served.writes++
  statements.unsafeUpdate(1, factsOf(node)[intent])
}

/** The node that served a statement, on its span (only when a tracer listens). */
const annotate = (span: Tracer.Span | undefined, node: Node.Node) => {
  if (span === undefined) return
  const facts = factsOf(node)
  span.attribute("effect_sql_router.node", node.id)
  span.attribute("effect_sql_router.role", node.role)
  span.attribute("server.address", facts.host)
  span.attribute("server.port", facts.port)
  span.attribute("db.namespace", facts.database)
}

/** The native tracer makes spans nobody reads: with it installed we make none. */
let nativeTracer: Tracer.Tracer | undefined
const isTracing = (fiber: Fiber.RuntimeFiber<unknown, unknown>): boolean => {
  if (!fiber.getFiberRef(FiberRef.currentTracerEnabled)) return false
  if (nativeTracer === undefined) nativeTracer = Effect.runSync(Effect.tracer)
  return fiber.currentTracer !== nativeTracer
}

const finish = (op: Op, rows: Rows | undefined, result: Pg.QueryResult): Effect.Effect<any> => {
  switch (op) {
    case "executeRaw":
      return Effect.succeed(result)
    case "executeValues":
      return Effect.succeed(result.rows)
    case "executeWithoutTransform":
      return Effect.succeed(NodeInternal.rowsOf(result))
    default:
      // A transform that throws is a defect of the fiber, not of the driver's callback.
      return rows === undefined ? Effect.succeed(NodeInternal.rowsOf(result)) : Effect.sync(() => rows(NodeInternal.rowsOf(result)))
  }
}

const onConnection = (
  connection: Connection.Connection,
  sql: string,
  params: ReadonlyArray<unknown>,
  op: Op,
  rows: Rows | undefined
): Effect.Effect<any, SqlError> => {
  switch (op) {
    case "executeRaw":
      return connection.executeRaw(sql, params)
    case "executeValues":
      return connection.executeValues(sql, params)
    case "executeUnprepared":
      return connection.executeUnprepared(sql, params, rows)
    case "executeWithoutTransform":
      return connection.execute(sql, params, undefined)
    default:
      return connection.execute(sql, params, rows)
  }
}

/** @internal */
export interface Router {
  /** Routes one compiled statement in `fiber`: the fast path's core, and the general path's. */
  readonly route: (
    fiber: Fiber.RuntimeFiber<unknown, unknown>,
    sql: string,
    params: ReadonlyArray<unknown>,
    op: Op,
    rows: Rows | undefined,
    span: Tracer.Span | undefined
  ) => Effect.Effect<any, SqlError>
  /** The general path's `Connection`: @effect/sql uses it outside transactions. */
  readonly connection: Connection.Connection
}

/**
 * The statement router.
 * @internal
 */
export const makeRouter = (
  state: Routing.RouterState,
  classifier: Classifier.Classifier,
  options: {
    readonly writeTimeout?: Duration.DurationInput | undefined
    /** After a routed schema change: e.g. read the catalog's functions again. */
    readonly onSchemaChange?: Effect.Effect<void> | undefined
  } = {}
): Router => {
  const { topology } = state
  const afterSchemaChange = (primary: Node.Node) => {
    const raised = Consistency.recordSchemaChange(state, primary.connection.execute(Consistency.schemaLsnQuery, [], undefined))
    return options.onSchemaChange === undefined ? raised : Effect.zipRight(raised, options.onSchemaChange)
  }
  const extendBarrier = (primary: Node.Node) =>
    Consistency.extendSchemaBarrier(state, primary.connection.execute(Consistency.schemaLsnQuery, [], undefined))
  const writeTimeout = options.writeTimeout === undefined ? undefined : Duration.toMillis(Duration.decode(options.writeTimeout))
  const readTimeout = state.config.readTimeout === undefined ? undefined : Duration.toMillis(state.config.readTimeout)
  const timedOut = () => new Error(`router read timeout: no answer within ${Duration.format(state.config.readTimeout!)}`)
  const hedgeAfter = state.config.hedgeAfter === undefined ? undefined : Duration.toMillis(state.config.hedgeAfter)
  const primaryForWrite = Effect.mapError(Membership.primaryForWrite(state), asSqlError)
  const picksNow = Routing.picksNow(state)
  const hasSession = (fiber: Fiber.RuntimeFiber<unknown, unknown>) =>
    fiber.currentContext.unsafeMap.has(Routing.SessionTag.key)

  /**
   * A write goes to the primary, never anywhere else and never twice: a
   * primary that turned read-only (failover) triggers re-discovery and fails
   * the statement. In a causal session it records the position reads need.
   */
  const writeOn = (
    fiber: Fiber.RuntimeFiber<unknown, unknown>,
    primary: Node.Node,
    sql: string,
    params: ReadonlyArray<unknown>,
    op: Op,
    rows: Rows | undefined,
    span: Tracer.Span | undefined,
    schemaChange: boolean
  ): Effect.Effect<any, SqlError> => {
    count(primary, "write")
    annotate(span, primary)
    const session = hasSession(fiber)
    return Effect.async<any, SqlError>((resume) => {
      let timer: ReturnType<typeof setTimeout> | undefined
      const running = NodeInternal.start(primary.pool, sql, params, op === "executeValues", (error, result, acquired) => {
        if (timer !== undefined) clearTimeout(timer)
        if (running.abandoned) return
        if (error === undefined) {
          const value = finish(op, rows, result!)
          const recorded = session ? Effect.zipRight(Consistency.recordCommitOnNode(state, primary), value) : value
          return resume(
            schemaChange
              ? Effect.zipRight(afterSchemaChange(primary), recorded)
              : Routing.extendsSchemaBarrier(state)
              ? Effect.zipRight(extendBarrier(primary), recorded)
              : recorded
          )
        }
        if (isReadOnlyViolation(error)) {
          return resume(Effect.mapError(Membership.primaryTurnedReadOnly(state, primary, error), asSqlError))
        }
        resume(Effect.fail(NodeInternal.failed(error, acquired)))
      })
      NodeInternal.watch(fiber, running)
      if (writeTimeout !== undefined) {
        // The same timer as a read's, but a write is never run again: its outcome is unknown.
        timer = setTimeout(() => {
          timer = undefined
          if (running.settled || running.abandoned) return
          NodeInternal.abandon(running)
          resume(Effect.fail(asSqlError(new WriteOutcomeUnknown({ node: primary.id, timeoutMillis: writeTimeout }))))
        }, writeTimeout)
      }
    })
  }

  const write = (
    fiber: Fiber.RuntimeFiber<unknown, unknown>,
    sql: string,
    params: ReadonlyArray<unknown>,
    op: Op,
    rows: Rows | undefined,
    span: Tracer.Span | undefined,
    schemaChange = false
  ): Effect.Effect<any, SqlError> =>
    // A split brain forbids writes: the STM check says why. Otherwise the primary, read as is.
    Routing.peek(topology.conflict).length > 0
      ? Effect.flatMap(primaryForWrite, (primary) => writeOn(fiber, primary, sql, params, op, rows, span, schemaChange))
      : writeOn(fiber, Routing.peek(topology.primary), sql, params, op, rows, span, schemaChange)

  /** A read on the primary: no replica fits, or the region forces the primary. */
  const readOnPrimary = (
    fiber: Fiber.RuntimeFiber<unknown, unknown>,
    sql: string,
    params: ReadonlyArray<unknown>,
    op: Op,
    rows: Rows | undefined,
    span: Tracer.Span | undefined
  ): Effect.Effect<any, SqlError> => {
    const primary = Routing.peek(topology.primary)
    count(primary, "read")
    annotate(span, primary)
    return Effect.async<any, SqlError>((resume) => {
      NodeInternal.watch(
        fiber,
        NodeInternal.start(primary.pool, sql, params, op === "executeValues", (error, result, acquired) =>
          resume(error === undefined ? finish(op, rows, result!) : Effect.fail(NodeInternal.failed(error, acquired))))
      )
    })
  }

  /**
   * A read on a replica, with the safety net: refused as a write (25006) it
   * runs on the primary; a replica that is gone or does not answer within
   * `readTimeout` leaves rotation and the read runs once more elsewhere. The
   * in-flight count is given back when the server answers.
   */
  const readOnReplica = (
    fiber: Fiber.RuntimeFiber<unknown, unknown>,
    replica: Topology.Replica,
    sql: string,
    params: ReadonlyArray<unknown>,
    op: Op,
    rows: Rows | undefined,
    span: Tracer.Span | undefined,
    retry: boolean
  ): Effect.Effect<any, SqlError> => {
    const node = replica.node
    count(node, "read")
    annotate(span, node)
    return Effect.async<any, SqlError>((resume) => {
      let timer: ReturnType<typeof setTimeout> | undefined
      // The replica left rotation (Waiting.releaseWaiting took this entry out):
      // the count goes back now, and a read still waiting runs once more elsewhere.
      const waiting = Waiting.readsWaitingOn(replica)
      const evicted = () => {
        Routing.unsafeRelease(replica)
        if (running.settled || running.abandoned) return
        if (timer !== undefined) clearTimeout(timer)
        NodeInternal.abandon(running)
        resume(again(fiber, sql, params, op, rows, span, retry))
      }
      waiting.add(evicted)
      const running: NodeInternal.Running = NodeInternal.start(node.pool, sql, params, op === "executeValues", (error, result, acquired) => {
        if (waiting.delete(evicted)) Routing.unsafeRelease(replica)
        if (timer !== undefined) clearTimeout(timer)
        if (running.abandoned) return
        if (error === undefined) return resume(finish(op, rows, result!))
        resume(afterFailureOn(fiber, replica, error, acquired, sql, params, op, rows, span, retry))
      })
      NodeInternal.watch(fiber, running)
      if (readTimeout !== undefined) {
        timer = setTimeout(() => {
          timer = undefined
          if (running.settled || running.abandoned) return
          NodeInternal.abandon(running)
          resume(afterTimeoutOn(fiber, replica, sql, params, op, rows, span, retry))
        }, readTimeout)
      }
    })
  }

  /** A read that `replica` did not answer within `readTimeout`: once more elsewhere, or the timeout's error. */
  const afterTimeoutOn = (
    fiber: Fiber.RuntimeFiber<unknown, unknown>,
    replica: Topology.Replica,
    sql: string,
    params: ReadonlyArray<unknown>,
    op: Op,
    rows: Rows | undefined,
    span: Tracer.Span | undefined,
    retry: boolean,
    error: Error = timedOut()
  ): Effect.Effect<any, SqlError> =>
    retry
      ? elsewhere(fiber, replica, error, sql, params, op, rows, span)
      : Effect.fail(new SqlError({ cause: error, message: error.message }))

  /** The safety net for a read that failed on a replica: readOnReplica's and each hedged attempt's. */
  const afterFailureOn = (
    fiber: Fiber.RuntimeFiber<unknown, unknown>,
    replica: Topology.Replica,
    error: Error,
    acquired: boolean,
    sql: string,
    params: ReadonlyArray<unknown>,
    op: Op,
    rows: Rows | undefined,
    span: Tracer.Span | undefined,
    retry: boolean
  ): Effect.Effect<any, SqlError> => {
    switch (Routing.afterReadFailure(state, replica, error)) {
      case "primary":
        return write(fiber, sql, params, op, rows, span)
      case "primary-read":
        return readOnPrimary(fiber, sql, params, op, rows, span)
      case "elsewhere":
        return retry
          ? elsewhere(fiber, replica, error, sql, params, op, rows, span)
          : Effect.fail(NodeInternal.failed(error, acquired))
      case "fail":
        return Effect.fail(NodeInternal.failed(error, acquired))
    }
  }

  /**
   * A read on a replica with `hedgeAfter` on: `readOnReplica`'s read, and when
   * the replica has not answered within `hedgeAfter`, the same statement on
   * another replica too. The first answer wins and the other attempt is
   * cancelled on the server; an attempt that fails, times out or is evicted
   * while the other still runs leaves the read to the other; when neither
   * answers, the safety net takes the last failure. Every outcome goes through
   * `settle`, once. Each attempt holds one in-flight count, given back as
   * `readOnReplica` gives it back: when its server answers (a cancelled
   * statement answers 57014) or when its replica leaves rotation.
   *
   * No fiber is forked: the hedge timer resumes the read's fiber with the
   * hedge (pick a replica, start there), and the fiber then waits again on
   * whichever attempt answers first.
   */
  const hedgedRead = (
    fiber: Fiber.RuntimeFiber<unknown, unknown>,
    replica: Topology.Replica,
    sql: string,
    params: ReadonlyArray<unknown>,
    op: Op,
    rows: Rows | undefined,
    span: Tracer.Span | undefined,
    retry: boolean,
    hedgeAfter: number
  ): Effect.Effect<any, SqlError> => {
    const rowMode = op === "executeValues"
    // Who waits for the outcome now; undefined while the fiber picks the hedge's replica.
    let resume: ((effect: Effect.Effect<any, SqlError>) => void) | undefined
    // The outcome, when the read settled while nobody waited.
    let outcome: Effect.Effect<any, SqlError> | undefined
    let settled = false
    let hedgeTimer: ReturnType<typeof setTimeout> | undefined
    let first: Attempt | undefined
    let second: Attempt | undefined
    // The failure of the attempt that ended first, for passive detection when the read settles.
    let observed: { readonly replica: Topology.Replica; readonly error: unknown } | undefined
    // The second attempt is not `watch`ed (a fiber watches one statement): this cancels it if the fiber ends.
    let onExit: (() => void) | undefined

    const giveUp = (attempt: Attempt | undefined) => {
      if (attempt === undefined || attempt.over) return
      attempt.over = true
      if (attempt.timer !== undefined) clearTimeout(attempt.timer)
      if (attempt.running !== undefined) NodeInternal.abandon(attempt.running)
    }

    const settle = (effect: Effect.Effect<any, SqlError>) => {
      settled = true
      if (hedgeTimer !== undefined) clearTimeout(hedgeTimer)
      if (onExit !== undefined) fiber.removeObserver(onExit)
      giveUp(first)
      giveUp(second)
      const value = observed === undefined
        ? effect
        : Effect.zipRight(Routing.observeFailure(observed.replica, observed.error), effect)
      if (resume === undefined) {
        outcome = value
        return
      }
      const waiting = resume
      resume = undefined
      waiting(value)
    }

    /** `attempt` will not answer: the other one may still, or else `then` is the read's outcome. */
    const ended = (attempt: Attempt, error: unknown, then: () => Effect.Effect<any, SqlError>) => {
      attempt.over = true
      if (settled) return
      const other = attempt === first ? second : first
      if (other !== undefined && !other.over) {
        if (error !== undefined) observed = { replica: attempt.replica, error }
        return
      }
      settle(then())
    }

    const start = (on: Topology.Replica): Attempt => {
      const attempt: Attempt = { replica: on, running: undefined, timer: undefined, over: false }
      const waiting = Waiting.readsWaitingOn(on)
      const evicted = () => {
        Routing.unsafeRelease(on)
        const running = attempt.running!
        if (running.settled || running.abandoned) return
        if (attempt.timer !== undefined) clearTimeout(attempt.timer)
        NodeInternal.abandon(running)
        ended(attempt, undefined, () => again(fiber, sql, params, op, rows, span, retry))
      }
      waiting.add(evicted)
      attempt.running = NodeInternal.start(on.node.pool, sql, params, rowMode, (error, result, acquired) => {
        if (waiting.delete(evicted)) Routing.unsafeRelease(on)
        if (attempt.timer !== undefined) clearTimeout(attempt.timer)
        // Given up already (lost, timed out, evicted, interrupted): only the count comes back.
        if (attempt.over || attempt.running?.abandoned === true) return
        if (error === undefined) {
          attempt.over = true
          // The span names the node that answered.
          if (attempt === second) annotate(span, on.node)
          return settle(finish(op, rows, result!))
        }
        ended(attempt, error, () => afterFailureOn(fiber, on, error, acquired, sql, params, op, rows, span, retry))
      })
      if (readTimeout !== undefined && !attempt.over) {
        attempt.timer = setTimeout(() => {
          attempt.timer = undefined
          const running = attempt.running!
          if (running.settled || running.abandoned) return
          NodeInternal.abandon(running)
          const error = timedOut()
          ended(attempt, error, () => afterTimeoutOn(fiber, on, sql, params, op, rows, span, retry, error))
        }, readTimeout)
      }
      return attempt
    }

    const startHedge = (other: Option.Option<Topology.Replica>) =>
      Effect.sync(() => {
        if (other._tag === "None") return
        // Answered (or given up) while the replica was picked: the pick is not used.
        if (settled) return Routing.unsafeRelease(other.value)
        count(other.value.node, "read")
        hedgedReads.unsafeUpdate(1, factsOf(other.value.node).node)
        onExit = () => {
          settled = true
          giveUp(second)
        }
        fiber.addObserver(onExit)
        second = start(other.value)
      })

    const waitAgain = (resumeAgain: (effect: Effect.Effect<any, SqlError>) => void) => {
      if (outcome !== undefined) return resumeAgain(outcome)
      resume = resumeAgain
    }

    count(replica.node, "read")
    annotate(span, replica.node)
    return Effect.async<any, SqlError>((resumeFirst) => {
      resume = resumeFirst
      first = start(replica)
      NodeInternal.watch(fiber, first.running!)
      if (settled) return
      hedgeTimer = setTimeout(() => {
        hedgeTimer = undefined
        if (settled || first!.over || first!.running!.abandoned || resume === undefined) return
        const waiting = resume
        resume = undefined
        // Picking and starting are one step: no interruption between the count and the statement.
        waiting(Effect.zipRight(
          Effect.uninterruptible(Effect.flatMap(Routing.pickHedge(state, fiber, replica), startHedge)),
          Effect.async<any, SqlError>(waitAgain)
        ))
      }, hedgeAfter)
    })
  }

  const readOn = (
    fiber: Fiber.RuntimeFiber<unknown, unknown>,
    chosen: Option.Option<Topology.Replica>,
    sql: string,
    params: ReadonlyArray<unknown>,
    op: Op,
    rows: Rows | undefined,
    span: Tracer.Span | undefined,
    retry: boolean
  ) => {
    const target = Routing.overflow(state, chosen)
    return target._tag === "None"
      ? readOnPrimary(fiber, sql, params, op, rows, span)
      : hedgeAfter === undefined
      ? readOnReplica(fiber, target.value, sql, params, op, rows, span, retry)
      : hedgedRead(fiber, target.value, sql, params, op, rows, span, retry, hedgeAfter)
  }

  /** The replica left rotation under the read: the read runs on the node chosen now. */
  const again = (
    fiber: Fiber.RuntimeFiber<unknown, unknown>,
    sql: string,
    params: ReadonlyArray<unknown>,
    op: Op,
    rows: Rows | undefined,
    span: Tracer.Span | undefined,
    retry: boolean
  ): Effect.Effect<any, SqlError> =>
    Effect.flatMap(
      Effect.mapError(Routing.decideReplica(state, fiber), asSqlError),
      (next) => readOn(fiber, next, sql, params, op, rows, span, retry)
    )

  /** The replica is gone: out of rotation, and the read once more on another node. */
  const elsewhere = (
    fiber: Fiber.RuntimeFiber<unknown, unknown>,
    replica: Topology.Replica,
    error: unknown,
    sql: string,
    params: ReadonlyArray<unknown>,
    op: Op,
    rows: Rows | undefined,
    span: Tracer.Span | undefined
  ): Effect.Effect<any, SqlError> =>
    Effect.zipRight(Routing.observeFailure(replica, error), again(fiber, sql, params, op, rows, span, false))

  const read = (
    fiber: Fiber.RuntimeFiber<unknown, unknown>,
    sql: string,
    params: ReadonlyArray<unknown>,
    op: Op,
    rows: Rows | undefined,
    span: Tracer.Span | undefined
  ): Effect.Effect<any, SqlError> => {
    if (fiber.getFiberRef(Routing.currentRoute) === "primary") return readOnPrimary(fiber, sql, params, op, rows, span)
    const plain = !hasSession(fiber) && fiber.getFiberRef(Routing.currentMaxStaleness)._tag === "None"
    // The common case: no session, no staleness bound, no DDL barrier, a
    // strategy with no random draw: the pick is synchronous and cannot fail.
    if (plain && picksNow && Routing.peek(state.schemaBarrier) === undefined) {
      const chosen = Routing.overflowNow(state, Routing.pickNow(state, state.requirement))
      return chosen === undefined
        ? readOnPrimary(fiber, sql, params, op, rows, span)
        : hedgeAfter === undefined
        ? readOnReplica(fiber, chosen, sql, params, op, rows, span, true)
        : hedgedRead(fiber, chosen, sql, params, op, rows, span, true, hedgeAfter)
    }
    const decision = plain
      ? Routing.peek(state.schemaBarrier) === undefined
        ? Routing.pickReplica(state, state.requirement)
        : Routing.pickUnderBarrier(state, Routing.plainRequirement)
      : Effect.mapError(Routing.decideReplica(state, fiber), asSqlError)
    return Effect.flatMap(decision, (chosen) => readOn(fiber, chosen, sql, params, op, rows, span, true))
  }

  const route: Router["route"] = (fiber, sql, params, op, rows, span) => {
    const kind = classifier.kind(sql)
    return kind === "read"
      ? read(fiber, sql, params, op, rows, span)
      : write(fiber, sql, params, op, rows, span, kind === "schema-change")
  }

  const routed = (sql: string, params: ReadonlyArray<unknown>, op: Op, rows: Rows | undefined) =>
    Effect.withFiberRuntime<any, SqlError>((fiber) => route(fiber, sql, params, op, rows, undefined))

  const routeStream = <A>(sql: string, params: ReadonlyArray<unknown>, rows: Rows | undefined): Stream.Stream<A, SqlError> =>
    Stream.unwrapScoped(
      classifier.classify(sql) === "write"
        ? Effect.map(primaryForWrite, (primary) => {
          count(primary, "write")
          return primary.connection.executeStream(sql, params, rows) as Stream.Stream<A, SqlError>
        })
        : Effect.map(
          Effect.acquireRelease(
            Effect.mapError(Routing.chooseRead(state), asSqlError),
            (chosen) => Option.isSome(chosen) ? Routing.releaseReplica(chosen.value) : Effect.void
          ),
          (chosen) => {
            const node = Option.isSome(chosen) ? chosen.value.node : Routing.peek(topology.primary)
            count(node, "read")
            return node.connection.executeStream(sql, params, rows) as Stream.Stream<A, SqlError>
          }
        )
    )

  const connection: Connection.Connection = {
    execute: (sql, params, rows) => routed(sql, params, "execute", rows),
    executeUnprepared: (sql, params, rows) => routed(sql, params, "executeUnprepared", rows),
    executeRaw: (sql, params) => routed(sql, params, "executeRaw", undefined),
    executeValues: (sql, params) => routed(sql, params, "executeValues", undefined),
    executeStream: (sql, params, rows) => routeStream(sql, params, rows)
  }
  return { route, connection }
}

/**
 * Classifies at compile time too, so that the general path's `sql.execute`
 * span carries the statement's intent: @effect/sql reads a client's span
 * attributes right after compiling, in the same synchronous step, and we fill
 * the slot in between.
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

/** The options of `RoutedClient.make`. @internal */
export interface Options extends Routing.ClientOptions {
  readonly writeTimeout?: Duration.DurationInput | undefined
}

type AnyStatement = Statement.Statement<any> & {
  readonly segments: ReadonlyArray<Statement.Segment>
  readonly acquirer: unknown
  readonly compiler: Statement.Compiler
  readonly spanAttributes: ReadonlyArray<readonly [string, unknown]>
  readonly transformRows: Rows | undefined
}

interface StatementClass {
  new(
    segments: ReadonlyArray<Statement.Segment>,
    acquirer: unknown,
    compiler: Statement.Compiler,
    spanAttributes: ReadonlyArray<readonly [string, unknown]>,
    transformRows: Rows | undefined
  ): AnyStatement
}

/**
 * A statement class whose every execution takes the fast path. It extends
 * @effect/sql's own statement class (taken from a statement it made), so
 * compile, toJSON, fragments and `.stream` behave exactly as upstream.
 */
const makeStatementClass = (
  sample: AnyStatement,
  router: Router,
  classifier: Classifier.Classifier,
  spanAttributes: ReadonlyArray<readonly [string, unknown]>,
  nodeOfConnection: WeakMap<Connection.Connection, string>
): StatementClass => {
  const Base = sample.constructor as new(...args: Array<any>) => any
  // A schema change inside a transaction raises the DDL barrier at its COMMIT.
  const inTransaction = (
    connection: Connection.Connection,
    sql: string,
    params: ReadonlyArray<unknown>,
    op: Op,
    rows: Rows | undefined
  ) => {
    if (classifier.kind(sql) === "schema-change") Consistency.markSchemaChange(connection)
    return onConnection(connection, sql, params, op, rows)
  }
  const general = (statement: AnyStatement, op: Op): Effect.Effect<any, SqlError> => {
    switch (op) {
      case "execute":
        return Base.prototype.commit.call(statement) as Effect.Effect<any, SqlError>
      case "executeValues":
        return Reflect.get(Base.prototype, "values", statement)
      case "executeRaw":
        return Reflect.get(Base.prototype, "raw", statement)
      case "executeUnprepared":
        return Reflect.get(Base.prototype, "unprepared", statement)
      case "executeWithoutTransform":
        return Reflect.get(Base.prototype, "withoutTransform", statement)
    }
  }

  const run = (statement: AnyStatement, op: Op): Effect.Effect<any, SqlError> =>
    Effect.withFiberRuntime<any, SqlError>((fiber) => {
      // A statement transformer rewrites statements with @effect/sql's machinery: let it.
      if (fiber.getFiberRef(Statement.currentTransformer)._tag === "Some") return general(statement, op)
      const rows = statement.transformRows
      const transaction = fiber.currentContext.unsafeMap.get(SqlClient.TransactionConnection.key) as
        | readonly [Connection.Connection, number]
        | undefined
      if (!isTracing(fiber)) {
        const [sql, params] = statement.compile(op === "executeRaw" || op === "executeWithoutTransform")
        return transaction !== undefined
          ? inTransaction(transaction[0], sql, params, op, rows)
          : router.route(fiber, sql, params, op, rows, undefined)
      }
      return Effect.useSpan("sql.execute", { kind: "client", captureStackTrace: false }, (span) => {
        const [sql, params] = statement.compile(op === "executeRaw" || op === "executeWithoutTransform")
        for (const [key, value] of spanAttributes) span.attribute(key, value)
        span.attribute("db.operation.name", op)
        span.attribute("db.query.text", sql)
        if (transaction !== undefined) {
          span.attribute("effect_sql_router.intent", "transaction")
          const node = nodeOfConnection.get(transaction[0])
          if (node !== undefined) span.attribute("effect_sql_router.node", node)
          return inTransaction(transaction[0], sql, params, op, rows)
        }
        span.attribute("effect_sql_router.intent", classifier.classify(sql))
        return router.route(fiber, sql, params, op, rows, span)
      })
    })

  class RoutedStatement extends Base {
    commit(): Effect.Effect<any, SqlError> {
      return run(this as unknown as AnyStatement, "execute")
    }
    get values(): Effect.Effect<any, SqlError> {
      return run(this as unknown as AnyStatement, "executeValues")
    }
    get raw(): Effect.Effect<any, SqlError> {
      return run(this as unknown as AnyStatement, "executeRaw")
    }
    get unprepared(): Effect.Effect<any, SqlError> {
      return run(this as unknown as AnyStatement, "executeUnprepared")
    }
    get withoutTransform(): Effect.Effect<any, SqlError> {
      return run(this as unknown as AnyStatement, "executeWithoutTransform")
    }
  }
  return RoutedStatement as unknown as StatementClass
}

/**
 * A statement constructor (`sql`…``, `sql.unsafe`, helpers) over @effect/sql's
 * own, whose statements take the fast path.
 */
const routedConstructor = (base: Statement.Constructor, Routed: StatementClass): Statement.Constructor => {
  const wrap = (s: AnyStatement) => new Routed(s.segments, s.acquirer, s.compiler, s.spanAttributes, s.transformRows)
  const sql = function(strings: unknown, ...args: Array<any>): any {
    const made = (base as any)(strings, ...args)
    return Array.isArray(strings) && "raw" in strings ? wrap(made) : made
  }
  return Object.assign(sql, base, {
    unsafe: (text: string, params?: ReadonlyArray<unknown>) => wrap(base.unsafe(text, params) as AnyStatement)
  }) as unknown as Statement.Constructor
}

/** @internal */
export const make = (
  state: Routing.RouterState,
  options: Options = {}
): Effect.Effect<PgClient.PgClient, never, Scope.Scope> =>
  Effect.gen(function*() {
    const classifier = Classifier.make({ sideEffectFunctions: state.config.sideEffectFunctions })
    const { topology } = state
    // sideEffectFunctions: "catalog": the user's volatile functions, read at
    // start and after each routed schema change. A failed read keeps the list.
    const readCatalog = state.config.sideEffectCatalog
      ? Effect.ignore(Effect.flatMap(
        Effect.tryPromise(() =>
          Routing.peek(topology.primary).pool.query<{ name: string }>(Catalog.volatileFunctionsSql)
        ),
        (result) => Effect.sync(() => classifier.setDiscoveredFunctions(result.rows.map((row) => row.name)))
      ))
      : undefined
    if (readCatalog !== undefined) yield* readCatalog
    const router = makeRouter(state, classifier, { writeTimeout: options.writeTimeout, onSchemaChange: readCatalog })
    const currentPrimary = Effect.sync(() => Routing.peek(topology.primary))
    const intentSlot: [string, unknown] = ["effect_sql_router.intent", "write"]
    const userAttributes = Object.entries(options.spanAttributes ?? {})
    const spanAttributes: ReadonlyArray<readonly [string, unknown]> = [
      ...userAttributes,
      ["db.system.name", "postgresql"],
      ["effect_sql_router.routed", true]
    ]
    // Each transaction's own node, by its connection: fibers never share it.
    const nodeOfConnection = new WeakMap<Connection.Connection, string>()
    const reserve = Effect.flatMap(
      Effect.mapError(Membership.primaryForWrite(state), asSqlError),
      (primary) =>
        Effect.map(primary.client.reserve, (connection) => {
          nodeOfConnection.set(connection, primary.id)
          return connection
        })
    )
    const compiler = PgClient.makeCompiler(options.transformQueryNames, options.transformJson)
    const transformRows = options.transformResultNames
      ? Statement.defaultTransforms(options.transformResultNames, options.transformJson).array
      : undefined
    const build = (compiler: Statement.Compiler, transformRows: Rows | undefined) =>
      SqlClient.make({
        acquirer: Effect.succeed(router.connection),
        transactionAcquirer: reserve,
        compiler: intentCompiler(compiler, classifier, intentSlot),
        spanAttributes: [...spanAttributes, intentSlot],
        transformRows
      }).pipe(Effect.provideService(Reactivity.Reactivity, state.reactivity))

    const withTransaction = Transaction.asSqlClientTransaction({
      node: (connection) => nodeOfConnection.get(connection) ?? "primary",
      readOnly: false,
      reserve,
      commit: Consistency.commitRecording(state)
    })

    const finishClient = (general: SqlClient.SqlClient, plain: () => PgClient.PgClient): PgClient.PgClient => {
      const Routed = makeStatementClass(general`SELECT 1` as AnyStatement, router, classifier, spanAttributes, nodeOfConnection)
      const client = Object.assign(routedConstructor(general, Routed), {
        [SqlClient.TypeId]: SqlClient.TypeId,
        [PgClient.TypeId]: PgClient.TypeId,
        withTransaction,
        reserve: general.reserve,
        reactive: general.reactive,
        reactiveMailbox: general.reactiveMailbox,
        listen: (channel: string) => Stream.unwrap(Effect.map(currentPrimary, (primary) => primary.client.listen(channel))),
        // @effect/sql-pg 0.53 sends NOTIFY with a bind parameter, which PostgreSQL rejects.
        notify: (channel: string, payload: string) =>
          Effect.flatMap(currentPrimary, (primary) =>
            Effect.asVoid(primary.connection.execute("SELECT pg_notify($1, $2)", [channel, payload], undefined)))
      })
      // The primary's, read when asked: after a failover it is the new primary's.
      Object.defineProperties(client, {
        config: { get: () => Routing.peek(topology.primary).client.config, enumerable: true },
        json: { get: () => Routing.peek(topology.primary).client.json, enumerable: true }
      })
      ;(client as any).safe = client
      ;(client as any).withoutTransforms = plain
      return client as unknown as PgClient.PgClient
    }

    // withoutTransforms(): neither the query-name nor the result-name transform.
    const plainGeneral = yield* build(compiler.withoutTransform, undefined)
    const plainClient = finishClient(plainGeneral, () => plainClient)
    const general = yield* build(compiler, transformRows)
    return finishClient(general, () => plainClient)
  })

/**
 * A node's own client on the same lean machinery, for regions (`withRead`,
 * `withWrite`, …): every statement runs on this node as one operation on its
 * pool; inside a transaction, on the transaction's connection. Transactions,
 * `reserve`, LISTEN/NOTIFY and `config` are the node's `PgClient`'s.
 * @internal
 */
export const makePinned = (state: Routing.RouterState, node: Node.Node): PgClient.PgClient => {
  const options = state.clientOptions ?? {}
  const classifier = Classifier.make({ sideEffectFunctions: state.config.sideEffectFunctions })
  const route: Router["route"] = (fiber, sql, params, op, rows, span) => {
    annotate(span, node)
    // A schema change in a primary region raises the DDL barrier too; a
    // write there while it is up moves it.
    const kind = node.role === "primary" ? classifier.kind(sql) : "read"
    return Effect.async<any, SqlError>((resume) => {
      NodeInternal.watch(
        fiber,
        NodeInternal.start(node.pool, sql, params, op === "executeValues", (error, result, acquired) => {
          if (error !== undefined) return resume(Effect.fail(NodeInternal.failed(error, acquired)))
          const value = finish(op, rows, result!)
          resume(
            kind === "schema-change"
              ? Effect.zipRight(
                Consistency.recordSchemaChange(state, node.connection.execute(Consistency.schemaLsnQuery, [], undefined)),
                value
              )
              : kind === "write" && Routing.extendsSchemaBarrier(state)
              ? Effect.zipRight(
                Consistency.extendSchemaBarrier(state, node.connection.execute(Consistency.schemaLsnQuery, [], undefined)),
                value
              )
              : value
          )
        })
      )
    })
  }
  const router: Router = { route, connection: node.connection }
  const spanAttributes: ReadonlyArray<readonly [string, unknown]> = [
    ...Object.entries(options.spanAttributes ?? {}),
    ["db.system.name", "postgresql"]
  ]
  const nodeOfConnection = new WeakMap<Connection.Connection, string>()
  const compiler = PgClient.makeCompiler(options.transformQueryNames, options.transformJson)
  const transformRows = options.transformResultNames
    ? Statement.defaultTransforms(options.transformResultNames, options.transformJson).array
    : undefined
  const build = (compiler: Statement.Compiler, transformRows: Rows | undefined): PgClient.PgClient => {
    // SqlClient.make only reads the Reactivity service: it runs synchronously.
    const general = Effect.runSync(
      SqlClient.make({
        acquirer: Effect.succeed(node.connection),
        transactionAcquirer: node.client.reserve,
        compiler,
        spanAttributes: [...spanAttributes, ["effect_sql_router.node", node.id]],
        transformRows
      }).pipe(Effect.provideService(Reactivity.Reactivity, state.reactivity))
    )
    const Routed = makeStatementClass(general`SELECT 1` as AnyStatement, router, classifier, spanAttributes, nodeOfConnection)
    const client = Object.assign(routedConstructor(general, Routed), {
      [SqlClient.TypeId]: SqlClient.TypeId,
      [PgClient.TypeId]: PgClient.TypeId,
      withTransaction: node.client.withTransaction,
      reserve: node.client.reserve,
      reactive: general.reactive,
      reactiveMailbox: general.reactiveMailbox,
      config: node.client.config,
      json: node.client.json,
      listen: node.client.listen,
      notify: node.client.notify
    })
    ;(client as any).safe = client
    return client as unknown as PgClient.PgClient
  }
  const plain = build(compiler.withoutTransform, undefined)
  ;(plain as any).withoutTransforms = () => plain
  const client = build(compiler, transformRows)
  ;(client as any).withoutTransforms = () => plain
  return client
}
