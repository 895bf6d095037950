import { expect, layer } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Latch from "effect/Latch"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as SqlClient from "effect/sql/SqlClient"
import * as Stream from "effect/Stream"
import * as Durable from "@effect-sql-router/effect4/Durable"
import * as SqlRouter from "@effect-sql-router/effect4/SqlRouter"
import { PgCluster } from "@effect-sql-router/effect4/testing"
import { clusterWithRouter } from "./utils.js"

const applicationName = "effect-sql-router-listen"

const notify = (channel: string, payload: string) =>
  Effect.flatMap(PgCluster.PgCluster, (cluster) =>
    cluster.query(cluster.primary, "SELECT pg_notify($1, $2)", [channel, payload]))

/** The backends that hold a LISTEN, as the primary reports them. */
const listenBackends = Effect.flatMap(PgCluster.PgCluster, (cluster) =>
  cluster.query<{ application_name: string }>(
    cluster.primary,
    "SELECT application_name FROM pg_stat_activity WHERE query ILIKE 'LISTEN%'"
  ))

/** Polls until `predicate` holds, for at most 10 seconds; the caller asserts afterwards. */
const awaitCondition = <A, E, R>(effect: Effect.Effect<A, E, R>, predicate: (a: A) => boolean) =>
  effect.pipe(
    Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: predicate }),
    Effect.timeoutOption("10 seconds")
  )

/** Runs the stream in a fiber; updates go to a queue. */
const consume = <S, A, E, R>(stream: Stream.Stream<Durable.Update<S, A, E>, never, R>) =>
  Effect.gen(function*() {
    const queue = yield* Queue.unbounded<Durable.Update<S, A, E>>()
    const fiber = yield* Effect.forkChild(Stream.runForEach(stream, (u) => Queue.offer(queue, u)))
    return { queue, fiber }
  })

/** Takes updates up to and including the first that satisfies `predicate`. */
const takeThrough = <S, A, E>(
  queue: Queue.Dequeue<Durable.Update<S, A, E>>,
  predicate: (u: Durable.Update<S, A, E>) => boolean
) =>
  Effect.gen(function*() {
    const taken: Array<Durable.Update<S, A, E>> = []
    while (true) {
      const next = yield* Queue.take(queue)
      taken.push(next)
      if (predicate(next)) return taken
    }
  })

const listenFailureOf = <S, A>(update: Durable.Update<S, A, unknown> | undefined) => {
  if (update === undefined || !Durable.isConnectionLost(update)) throw new Error(`expected ConnectionLost, got ${update?._tag}`)
  const failure = Cause.findErrorOption(update.cause)
  if (failure._tag === "None" || !(failure.value instanceof Durable.ListenFailed)) {
    throw new Error(`expected a ListenFailed, got ${Cause.pretty(update.cause)}`)
  }
  return failure.value
}

const countItems = SqlRouter.withPrimary(Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(sql<{ n: number }>`SELECT count(*)::int AS n FROM items`, (rows) => rows[0]!.n)))

/** Inserts a row and notifies `items` with its label, in one transaction. */
const insertItem = (label: string) =>
  Effect.flatMap(PgCluster.PgCluster, (cluster) =>
    cluster.query(
      cluster.primary,
      "WITH row AS (INSERT INTO items (label) VALUES ($1) RETURNING label) SELECT pg_notify('items', label) FROM row",
      [label]
    ))

layer(clusterWithRouter({ replicas: 0 }), { timeout: "120 seconds", excludeTestServices: true })("Durable (PostgreSQL)", (it) => {
  it.effect("subscribe: a row written while disconnected is in the State after reconnecting", () =>
    Effect.gen(function*() {
      const cluster = yield* PgCluster.PgCluster
      yield* cluster.query(cluster.primary, "CREATE TABLE items (id serial PRIMARY KEY, label text NOT NULL)")
      // Holds resubscription back while the test writes, so "while disconnected" is a fact, not a race.
      const gate = yield* Latch.make(true)
      const { fiber, queue } = yield* consume(Durable.subscribe({
        updates: Effect.andThen(gate.await, Durable.notifications("items")),
        state: countItems,
        resubscribeDelay: "100 millis"
      }))
      expect([yield* Queue.take(queue), yield* Queue.take(queue)]).toEqual([
        Durable.connectionSuccess,
        Durable.state(0)
      ])
      yield* insertItem("one")
      expect(yield* Queue.take(queue)).toEqual(Durable.update("one"))

      yield* gate.close
      const terminated = yield* cluster.query<{ ok: boolean }>(
        cluster.primary,
        "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1",
        [applicationName]
      )
      expect(terminated).toEqual([{ ok: true }])
      const lost = listenFailureOf(yield* Queue.take(queue))
      expect(lost.channel).toBe("items")
      expect(lost.node).toBe("primary")

      // Nobody listens now: this notification is lost, the row is not.
      yield* insertItem("two")
      yield* gate.open
      expect([yield* Queue.take(queue), yield* Queue.take(queue)]).toEqual([
        Durable.connectionSuccess,
        Durable.state(2)
      ])
      yield* insertItem("three")
      expect(yield* Queue.take(queue)).toEqual(Durable.update("three"))
      yield* Fiber.interrupt(fiber)
      yield* awaitCondition(listenBackends, (rows) => rows.length === 0)
      expect(yield* listenBackends).toEqual([])
    }))

  it.effect("listen: survives a primary restart; stopping it leaves no LISTEN connection", () =>
    Effect.gen(function*() {
      const cluster = yield* PgCluster.PgCluster
      const { fiber, queue } = yield* consume(Durable.listen("events", { resubscribeDelay: "200 millis" }))
      expect(yield* Queue.take(queue)).toEqual(Durable.connectionSuccess)
      expect(yield* listenBackends).toEqual([{ application_name: applicationName }])
      yield* notify("events", "before restart")
      yield* notify("other channel", "not for us")
      expect(yield* Queue.take(queue)).toEqual(Durable.update("before restart"))

      yield* cluster.stop(cluster.primary)
      const lost = listenFailureOf(yield* Queue.take(queue))
      expect(lost.channel).toBe("events")
      // While the primary is down, the OrFail variant fails typed instead of retrying.
      const refused = yield* Effect.flip(Effect.scoped(Durable.listenOrFail("events", { resubscribeDelay: "200 millis" })))
      expect(refused._tag).toBe("ListenFailed")
      expect(refused.message).toContain("cannot connect")

      yield* cluster.start(cluster.primary)
      const reconnecting = yield* takeThrough(queue, Durable.isConnectionSuccess)
      // Attempts made while the server was down each report their loss; then it is back.
      for (const update of reconnecting.slice(0, -1)) listenFailureOf(update)
      expect(reconnecting.at(-1)).toEqual(Durable.connectionSuccess)

      yield* notify("events", "after restart")
      expect(yield* Queue.take(queue)).toEqual(Durable.update("after restart"))
      expect(yield* listenBackends).toEqual([{ application_name: applicationName }])

      yield* Fiber.interrupt(fiber)
      yield* awaitCondition(listenBackends, (rows) => rows.length === 0)
      expect(yield* listenBackends).toEqual([])
    }))

  it.effect("listenOrFail: LISTEN is active before the stream runs", () =>
    Effect.gen(function*() {
      const stream = yield* Durable.listenOrFail("late", { resubscribeDelay: "200 millis" })
      expect(yield* listenBackends).toEqual([{ application_name: applicationName }])
      // Sent before anyone pulls: kept by the open subscription.
      yield* notify("late", "early bird")
      const { fiber, queue } = yield* consume(stream)
      expect([yield* Queue.take(queue), yield* Queue.take(queue)]).toEqual([
        Durable.connectionSuccess,
        Durable.update("early bird")
      ])
      yield* Fiber.interrupt(fiber)
      yield* awaitCondition(listenBackends, (rows) => rows.length === 0)
      expect(yield* listenBackends).toEqual([])
    }))
})
