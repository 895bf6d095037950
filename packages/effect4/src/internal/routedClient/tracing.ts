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
const factsOf = (node: Node.Node): NodeFacts => {
  let facts = factsCache.get(node)
  if (facts === undefined) {
    const colon = node.address.lastIndexOf(":")
    facts = {
      read: Metric.withAttributes(statements, { node: node.id, intent: "read" }) as Metric.Metric<number, unknown>,
      write: Metric.withAttributes(statements, { node: node.id, intent: "write" }) as Metric.Metric<number, unknown>,
      hedge: Metric.withAttributes(hedgedReads, { node: node.id }) as Metric.Metric<number, unknown>,
      host: node.address.slice(0, colon),
      port: Number(node.address.slice(colon + 1))
    }
    factsCache.set(node, facts)
  }
  return facts
}

/** A statement served by `node`: its counter and the statements metric. @internal */
export const count = (fiber: Fiber.Fiber<unknown, unknown>, node: Node.Node, intent: Classifier.Intent): void => {
  if (intent === "read") node.served.reads++
  else node.served.writes++
  factsOf(node)[intent === "read" ? "read" : "write"].updateUnsafe(1, fiber.context)
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
