/** @internal */
import type * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Tracer from "effect/Tracer"
import * as Context from "effect/Context"
import * as SqlStatement from "effect/sql/Statement"
import type * as Classifier from "../../Classifier.js"
import type * as Node from "../../Node.js"
import { hedgedReads, statements } from "../metrics.js"

// What a routed statement tells the outside: counters, metrics and span
// attributes, from facts made once per node so that the hot path allocates
// none of them.

/** Per node, made once: the metrics with its attributes, and its address. */
interface NodeFacts {
  readonly read: Metric.Metric<number, unknown>
  readonly write: Metric.Metric<number, unknown>
  readonly hedge: Metric.Metric<number, unknown>
  readonly host: string
  readonly port: number
}
const factsCache = new WeakMap<Node.Node, NodeFacts>()

/** The series of an incremental counter with fixed attributes: the same series `withAttributes` would name. */
const seriesOf = (
  counter: Metric.Metric<number, unknown>,
  attributes: Record<string, string>
): Metric.Metric<number, unknown> =>
  Metric.counter(counter.id, {
    ...(counter.description !== undefined ? { description: counter.description } : {}),
    incremental: true,
    attributes
  }) as Metric.Metric<number, unknown>
const factsOf = (node: Node.Node): NodeFacts => {
  let facts = factsCache.get(node)
  if (facts === undefined) {
    const colon = node.address.lastIndexOf(":")
    // Series of their own, not `Metric.withAttributes` (which adds the
    // attributes to the context, and so re-keys the series, on every update).
    facts = {
      read: seriesOf(statements, { node: node.id, intent: "read" }),
      write: seriesOf(statements, { node: node.id, intent: "write" }),
      hedge: seriesOf(hedgedReads, { node: node.id }),
      host: node.address.slice(0, colon),
      port: Number(node.address.slice(colon + 1))
    }
    factsCache.set(node, facts)
  }
  return facts
}

/**
 * Nodes whose `served` counts back the statements metric's series: the
 * series reads the count when it is looked at, so a statement only bumps a
 * number. Registered at a node's first statement, in the metric registry of
 * the fiber that ran it.
 */
const registered = new WeakSet<Node.Node>()
const ignore = () => {}
const servedHooks = (count: () => number): Metric.Metric.Hooks<number, unknown> => ({
  get: () => ({ count: count(), incremental: true }),
  update: ignore,
  modify: ignore
})
const register = (fiber: Fiber.Fiber<unknown, unknown>, node: Node.Node): void => {
  registered.add(node)
  const facts = factsOf(node)
  Metric.registerUnsafe(facts.read, fiber.context, servedHooks(() => node.served.reads))
  Metric.registerUnsafe(facts.write, fiber.context, servedHooks(() => node.served.writes))
}

/** A statement served by `node`: its `served` count, which the statements metric reads. @internal */
export const count = (fiber: Fiber.Fiber<unknown, unknown>, node: Node.Node, intent: Classifier.Intent): void => {
  if (intent === "read") node.served.reads++
  else node.served.writes++
  if (!registered.has(node)) register(fiber, node)
}

/** A hedge started on `node`. @internal */
export const countHedge = (fiber: Fiber.Fiber<unknown, unknown>, node: Node.Node): void =>
  factsOf(node).hedge.updateUnsafe(1, fiber.context)

/**
 * The node that served a statement, on the statement's span: `effect/sql`
 * hands its span to the connection only with `SpanPropagationEnabled` on
 * (as the parent span); otherwise the span carries the intent alone.
 * @internal
 */
export const annotate = (fiber: Fiber.Fiber<unknown, unknown>, node: Node.Node): void => {
  // Without propagation the parent span is the caller's, not the statement's.
  if (!fiber.getRef(SqlStatement.SpanPropagationEnabled)) return
  annotateSpan(Context.getOrUndefined(fiber.context, Tracer.ParentSpan), node)
}

/** The node on a span the router knows is the statement's or the transaction's. @internal */
export const annotateSpan = (span: Tracer.AnySpan | undefined, node: Node.Node): void => {
  if (span === undefined || span._tag !== "Span") return
  const facts = factsOf(node)
  span.attribute("effect_sql_router.node", node.id)
  span.attribute("effect_sql_router.role", node.role)
  span.attribute("server.address", facts.host)
  span.attribute("server.port", facts.port)
}
