import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/testing/TestClock"
import * as Durable from "@effect-sql-router/effect4/Durable"

class Boom extends Data.TaggedError("Boom")<{ readonly attempt: number }> {}

const delay = Duration.seconds(10)
const justBefore = Duration.subtract(delay, Duration.millis(1))

/** What a stub source saw: attempts made, attempts released, and events in order. */
interface Probe {
  readonly attempts: Ref.Ref<number>
  readonly released: Ref.Ref<number>
  readonly log: Ref.Ref<ReadonlyArray<string>>
}

const makeProbe: Effect.Effect<Probe> = Effect.all({
  attempts: Ref.make(0),
  released: Ref.make(0),
  log: Ref.make<ReadonlyArray<string>>([])
})

const record = (probe: Probe, event: string) => Ref.update(probe.log, (log) => [...log, event])

/**
 * One attempt of a stub source: counts itself, registers its release, fails
 * while `attempt <= failures`, else gives `items(attempt)`.
 */
const stubConnect = (
  probe: Probe,
  failures: number,
  items: (attempt: number) => Stream.Stream<string, Boom> = () => Stream.concat(Stream.make("a"), Stream.never)
): Effect.Effect<Stream.Stream<string, Boom>, Boom, Scope.Scope> =>
  Effect.gen(function*() {
    const attempt = yield* Ref.updateAndGet(probe.attempts, (n) => n + 1)
    yield* Effect.addFinalizer(() =>
      Ref.update(probe.released, (n) => n + 1).pipe(Effect.andThen(record(probe, `release ${attempt}`)))
    )
    if (attempt <= failures) return yield* Effect.fail(new Boom({ attempt }))
    yield* record(probe, `subscribed ${attempt}`)
    return items(attempt)
  })

const render = Durable.match({
  onConnectionSuccess: () => "ConnectionSuccess",
  onConnectionLost: (cause) => cause.reasons.length === 0 ? "ConnectionLost(ended)" : "ConnectionLost",
  onState: (state) => `State ${String(state)}`,
  onUpdate: (update) => `Update ${String(update)}`
})

/** Runs the stream in a fiber; every update goes to the queue and, rendered, to the log. */
const consume = <S, A, E>(stream: Stream.Stream<Durable.Update<S, A, E>>, probe: Probe) =>
  Effect.gen(function*() {
    const queue = yield* Queue.unbounded<Durable.Update<S, A, E>>()
    const fiber = yield* Effect.forkChild(
      Stream.runForEach(stream, (u) => Queue.offer(queue, u).pipe(Effect.andThen(record(probe, render(u)))))
    )
    return { queue, fiber }
  })

const take = <A>(queue: Queue.Dequeue<A>, n: number) => Effect.map(Queue.takeBetween(queue, n, n), (taken) => Array.from(taken))

const failureOf = <S, A, E>(update: Durable.Update<S, A, E> | undefined): Option.Option<E> => {
  if (update === undefined || !Durable.isConnectionLost(update)) throw new Error(`expected ConnectionLost, got ${update?._tag}`)
  return Cause.findErrorOption(update.cause)
}

describe("Durable", () => {
  describe("make", () => {
    it.effect("resubscribes exactly resubscribeDelay after each failed attempt, repeatedly", () =>
      Effect.gen(function*() {
        const probe = yield* makeProbe
        const { queue } = yield* consume(
          Durable.make({ connect: stubConnect(probe, 3), resubscribeDelay: delay }),
          probe
        )
        const [first] = yield* take(queue, 1)
        expect(failureOf(first)).toEqual(Option.some(new Boom({ attempt: 1 })))
        expect(yield* Ref.get(probe.attempts)).toBe(1)

        for (const attempt of [2, 3, 4]) {
          yield* TestClock.adjust(justBefore)
          expect(yield* Ref.get(probe.attempts)).toBe(attempt - 1)
          expect(yield* Queue.size(queue)).toBe(0)
          yield* TestClock.adjust(Duration.millis(1))
          expect(yield* Ref.get(probe.attempts)).toBe(attempt)
          const [next] = yield* take(queue, 1)
          if (attempt < 4) expect(failureOf(next)).toEqual(Option.some(new Boom({ attempt })))
          else expect(next).toEqual(Durable.connectionSuccess)
        }
        expect(yield* take(queue, 1)).toEqual([Durable.update("a")])
        // Every failed attempt released what it had acquired.
        expect(yield* Ref.get(probe.released)).toBe(3)
      }))

    it.effect("a failing or ending source gives ConnectionLost after its release, with the cause", () =>
      Effect.gen(function*() {
        const probe = yield* makeProbe
        const items = (attempt: number) =>
          attempt === 1
            ? Stream.concat(Stream.make("a"), Stream.fail(new Boom({ attempt })))
            : attempt === 2
            ? Stream.make("b")
            : Stream.never
        const { queue } = yield* consume(
          Durable.make({ connect: stubConnect(probe, 0, items), resubscribeDelay: delay }),
          probe
        )
        const firstRun = yield* take(queue, 3)
        expect(firstRun.slice(0, 2)).toEqual([Durable.connectionSuccess, Durable.update("a")])
        expect(failureOf(firstRun[2])).toEqual(Option.some(new Boom({ attempt: 1 })))

        yield* TestClock.adjust(delay)
        const secondRun = yield* take(queue, 3)
        expect(secondRun.slice(0, 2)).toEqual([Durable.connectionSuccess, Durable.update("b")])
        // The source ended without a failure: the cause is empty.
        expect(Durable.isConnectionLost(secondRun[2]!) && secondRun[2].cause.reasons.length === 0).toBe(true)

        yield* TestClock.adjust(delay)
        expect(yield* take(queue, 1)).toEqual([Durable.connectionSuccess])
        expect(yield* Ref.get(probe.log)).toEqual([
          "subscribed 1",
          "ConnectionSuccess",
          "Update a",
          "release 1",
          "ConnectionLost",
          "subscribed 2",
          "ConnectionSuccess",
          "Update b",
          "release 2",
          "ConnectionLost(ended)",
          "subscribed 3",
          "ConnectionSuccess"
        ])
      }))

    it.effect("stopping the consumer releases the live attempt once and ends the retries", () =>
      Effect.gen(function*() {
        const probe = yield* makeProbe
        const { fiber, queue } = yield* consume(
          Durable.make({ connect: stubConnect(probe, 0), resubscribeDelay: delay }),
          probe
        )
        expect(yield* take(queue, 2)).toEqual([Durable.connectionSuccess, Durable.update("a")])
        expect(yield* Ref.get(probe.released)).toBe(0)
        yield* Fiber.interrupt(fiber)
        expect(yield* Ref.get(probe.released)).toBe(1)
        yield* TestClock.adjust(Duration.times(delay, 10))
        expect(yield* Ref.get(probe.attempts)).toBe(1)
        expect(yield* Ref.get(probe.released)).toBe(1)
        expect(yield* Queue.size(queue)).toBe(0)
      }))

    it.effect("stopping the consumer while it waits to resubscribe ends the retries", () =>
      Effect.gen(function*() {
        const probe = yield* makeProbe
        const { fiber, queue } = yield* consume(
          Durable.make({ connect: stubConnect(probe, Infinity), resubscribeDelay: delay }),
          probe
        )
        yield* take(queue, 1)
        yield* TestClock.adjust(justBefore)
        yield* Fiber.interrupt(fiber)
        yield* TestClock.adjust(Duration.times(delay, 10))
        expect(yield* Ref.get(probe.attempts)).toBe(1)
        expect(yield* Ref.get(probe.released)).toBe(1)
      }))
  })

  describe("subscribe", () => {
    /**
     * A Queue-backed source (buffers from `connect` on), whose snapshot
     * sees an item arrive while it runs.
     */
    const source = (probe: Probe) =>
      Effect.gen(function*() {
        const current = yield* Ref.make(Option.none<Queue.Queue<string, Boom>>())
        const queue = Effect.flatMap(Ref.get(current), Effect.fromOption)
        const updates = Effect.flatMap(
          stubConnect(probe, 0, () => Stream.never),
          () =>
            Effect.gen(function*() {
              const queue = yield* Queue.unbounded<string, Boom>()
              yield* Ref.set(current, Option.some(queue))
              return Stream.fromQueue(queue)
            })
        )
        const state = Effect.gen(function*() {
          const attempt = yield* Ref.get(probe.attempts)
          yield* Queue.offer(yield* queue, `during snapshot ${attempt}`)
          yield* record(probe, `snapshot ${attempt}`)
          return attempt * 100
        })
        return { state, updates, queue: Effect.orDie(queue) }
      })

    it.effect("every ConnectionSuccess is followed by State, then the Updates buffered meanwhile", () =>
      Effect.gen(function*() {
        const probe = yield* makeProbe
        const { queue: items, state, updates } = yield* source(probe)
        const { queue } = yield* consume(Durable.subscribe({ state, updates, resubscribeDelay: delay }), probe)

        expect(yield* take(queue, 3)).toEqual([
          Durable.connectionSuccess,
          Durable.state(100),
          Durable.update("during snapshot 1")
        ])
        yield* Effect.flatMap(items, (q) => Queue.offer(q, "x"))
        expect(yield* take(queue, 1)).toEqual([Durable.update("x")])

        yield* Effect.flatMap(items, (q) => Queue.fail(q, new Boom({ attempt: 1 })))
        expect(failureOf((yield* take(queue, 1))[0])).toEqual(Option.some(new Boom({ attempt: 1 })))
        yield* TestClock.adjust(delay)
        expect(yield* take(queue, 3)).toEqual([
          Durable.connectionSuccess,
          Durable.state(200),
          Durable.update("during snapshot 2")
        ])
        // The snapshot is read once the subscription is established.
        const log = yield* Ref.get(probe.log)
        expect(log.indexOf("subscribed 1")).toBeLessThan(log.indexOf("snapshot 1"))
        expect(log.indexOf("subscribed 2")).toBeLessThan(log.indexOf("snapshot 2"))
      }))

    it.effect("a failed snapshot fails the attempt: ConnectionLost, never ConnectionSuccess without State", () =>
      Effect.gen(function*() {
        const probe = yield* makeProbe
        const state = Effect.flatMap(Ref.get(probe.attempts), (attempt) =>
          attempt === 1 ? Effect.fail(new Boom({ attempt })) : Effect.succeed("fresh"))
        const { queue } = yield* consume(
          Durable.subscribe({ state, updates: stubConnect(probe, 0), resubscribeDelay: delay }),
          probe
        )
        expect(failureOf((yield* take(queue, 1))[0])).toEqual(Option.some(new Boom({ attempt: 1 })))
        expect(yield* Ref.get(probe.released)).toBe(1)
        yield* TestClock.adjust(delay)
        expect(yield* take(queue, 3)).toEqual([Durable.connectionSuccess, Durable.state("fresh"), Durable.update("a")])
      }))
  })

  describe("OrFail variants", () => {
    it.effect("makeOrFail fails with the first attempt's error and does not retry", () =>
      Effect.gen(function*() {
        const probe = yield* makeProbe
        const error = yield* Effect.flip(Durable.makeOrFail({ connect: stubConnect(probe, 1), resubscribeDelay: delay }))
        expect(error).toEqual(new Boom({ attempt: 1 }))
        expect(yield* Ref.get(probe.released)).toBe(1)
        yield* TestClock.adjust(Duration.times(delay, 10))
        expect(yield* Ref.get(probe.attempts)).toBe(1)
      }))

    it.effect("makeOrFail succeeds with the first attempt open, then is durable", () =>
      Effect.gen(function*() {
        const probe = yield* makeProbe
        const items = (attempt: number) =>
          attempt === 1 ? Stream.concat(Stream.make("a"), Stream.fail(new Boom({ attempt }))) : Stream.make("b")
        const stream = yield* Durable.makeOrFail({ connect: stubConnect(probe, 0, items), resubscribeDelay: delay })
        // Subscribed already, and still holding its resources.
        expect(yield* Ref.get(probe.attempts)).toBe(1)
        expect(yield* Ref.get(probe.released)).toBe(0)

        const { queue } = yield* consume(stream, probe)
        const firstRun = yield* take(queue, 3)
        expect(firstRun.slice(0, 2)).toEqual([Durable.connectionSuccess, Durable.update("a")])
        expect(failureOf(firstRun[2])).toEqual(Option.some(new Boom({ attempt: 1 })))
        expect(yield* Ref.get(probe.attempts)).toBe(1)
        expect(yield* Ref.get(probe.released)).toBe(1)

        yield* TestClock.adjust(justBefore)
        expect(yield* Ref.get(probe.attempts)).toBe(1)
        yield* TestClock.adjust(Duration.millis(1))
        expect(yield* take(queue, 2)).toEqual([Durable.connectionSuccess, Durable.update("b")])
        expect(yield* Ref.get(probe.attempts)).toBe(2)
      }))

    it.effect("subscribeOrFail fails when the first snapshot fails, and releases the subscription", () =>
      Effect.gen(function*() {
        const probe = yield* makeProbe
        const error = yield* Effect.flip(Durable.subscribeOrFail({
          state: Effect.fail(new Boom({ attempt: 0 })),
          updates: stubConnect(probe, 0),
          resubscribeDelay: delay
        }))
        expect(error).toEqual(new Boom({ attempt: 0 }))
        expect(yield* Ref.get(probe.attempts)).toBe(1)
        expect(yield* Ref.get(probe.released)).toBe(1)
      }))

    it.effect("subscribeOrFail succeeds with ConnectionSuccess and State first", () =>
      Effect.gen(function*() {
        const probe = yield* makeProbe
        const stream = yield* Durable.subscribeOrFail({
          state: Effect.succeed(["row"]),
          updates: stubConnect(probe, 0),
          resubscribeDelay: delay
        })
        const { queue } = yield* consume(stream, probe)
        expect(yield* take(queue, 3)).toEqual([
          Durable.connectionSuccess,
          Durable.state(["row"]),
          Durable.update("a")
        ])
      }))
  })
})
