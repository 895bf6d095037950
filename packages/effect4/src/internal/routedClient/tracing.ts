/** @internal */
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as MetricLabel from "effect/MetricLabel"
import type * as Tracer from "effect/Tracer"
import type Pg from "pg"
import type * as Classifier from "../../Classifier.js"
import type * as Node from "../../Node.js"
import { hedgedReads, statements } from "../metrics.js"

// What a routed statement tells the outside: counters, metrics and span
// attributes, from facts made once per node so that the hot path allocates
// none of them.

/** Per node, made once: metric labels and span attributes. */
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

/** A statement served by `node`: its counter and the statements metric. @internal */
export const count = (node: Node.Node, intent: Classifier.Intent) => {
  if (intent === "read") node.served.reads++
  else node.served.writes++
  statements.unsafeUpdate(1, factsOf(node)[intent])
}

/** A hedge started on `node`. @internal */
export const countHedge = (node: Node.Node) => hedgedReads.unsafeUpdate(1, factsOf(node).node)

/** The node that served a statement, on its span (only when a tracer listens). @internal */
export const annotate = (span: Tracer.Span | undefined, node: Node.Node) => {
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

/** Whether a statement in `fiber` gets a span. @internal */
export const isTracing = (fiber: Fiber.RuntimeFiber<unknown, unknown>): boolean => {
  if (!fiber.getFiberRef(FiberRef.currentTracerEnabled)) return false
  if (nativeTracer === undefined) nativeTracer = Effect.runSync(Effect.tracer)
  return fiber.currentTracer !== nativeTracer
}
