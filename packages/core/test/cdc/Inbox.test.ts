import { describe, expect, it } from "vitest"
import * as Inbox from "../../src/cdc/Inbox.js"

describe("cdc/Inbox", () => {
  it("keeps items in arrival order; peek leaves the oldest in place, shift takes it", () => {
    const inbox = Inbox.make<number>()
    expect(inbox.peek()).toBeUndefined()
    expect(inbox.shift()).toBeUndefined()
    inbox.offer(1)
    inbox.offer(2)
    inbox.offer(3)
    expect(inbox.size()).toBe(3)
    expect(inbox.peek()).toBe(1)
    expect(inbox.peek()).toBe(1)
    expect(inbox.shift()).toBe(1)
    expect(inbox.shift()).toBe(2)
    expect(inbox.size()).toBe(1)
    inbox.offer(4)
    expect([inbox.shift(), inbox.shift(), inbox.shift()]).toEqual([3, 4, undefined])
    expect(inbox.size()).toBe(0)
  })

  it("a wait on an empty inbox gets the oldest item after the burst of offers, the rest stay buffered in order", async () => {
    const inbox = Inbox.make<string>()
    const got: Array<string> = []
    inbox.wait((item) => got.push(item))
    inbox.offer("a")
    inbox.offer("b")
    inbox.offer("c")
    // Nothing is handed over while the offers run.
    expect(got).toEqual([])
    expect(inbox.size()).toBe(3)
    await Promise.resolve()
    expect(got).toEqual(["a"])
    expect([inbox.shift(), inbox.shift(), inbox.size()]).toEqual(["b", "c", 0])
    // The waiter was used once: the next item stays buffered.
    inbox.offer("d")
    await Promise.resolve()
    expect(got).toEqual(["a"])
    expect(inbox.shift()).toBe("d")
  })

  it("a wait while items are buffered takes the oldest at once", () => {
    const inbox = Inbox.make<string>()
    inbox.offer("a")
    inbox.offer("b")
    const got: Array<string> = []
    inbox.wait((item) => got.push(item))
    expect(got).toEqual(["a"])
    expect(inbox.size()).toBe(1)
    expect(inbox.peek()).toBe("b")
  })

  it("a wait withdrawn before or after the offer gets nothing, and the item stays buffered", async () => {
    const inbox = Inbox.make<string>()
    const got: Array<string> = []
    inbox.wait((item) => got.push(item))()
    inbox.offer("a")
    const withdraw = inbox.wait((item) => got.push(item + "!"))
    // Buffered "a" was handed over at once; now wait again, offer, and withdraw before the handover.
    const withdrawLate = inbox.wait((item) => got.push(item + "?"))
    inbox.offer("b")
    withdrawLate()
    await Promise.resolve()
    withdraw()
    expect(got).toEqual(["a!"])
    expect(inbox.shift()).toBe("b")
  })

  it("withdrawing a wait that was replaced leaves the current waiter alone", async () => {
    const inbox = Inbox.make<string>()
    const first: Array<string> = []
    const second: Array<string> = []
    const withdrawFirst = inbox.wait((item) => first.push(item))
    inbox.wait((item) => second.push(item))
    withdrawFirst()
    inbox.offer("a")
    await Promise.resolve()
    expect(first).toEqual([])
    expect(second).toEqual(["a"])
  })

  it("keeps order across compaction of a long consumed head, interleaving offers and takes", () => {
    const inbox = Inbox.make<number>()
    const taken: Array<number> = []
    let next = 0
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 300; i++) inbox.offer(next++)
      for (let i = 0; i < 250; i++) taken.push(inbox.shift()!)
    }
    while (inbox.size() > 0) taken.push(inbox.shift()!)
    expect(taken.length).toBe(next)
    expect(taken.every((value, index) => value === index)).toBe(true)
  })
})

describe("cdc/Inbox flow control", () => {
  it("pauses once past highWater, resumes only below lowWater, once each", () => {
    const calls: Array<string> = []
    const inbox = Inbox.make<number>({
      highWater: 4,
      lowWater: 2,
      pause: () => calls.push("pause"),
      resume: () => calls.push("resume")
    })
    for (let i = 0; i < 4; i++) inbox.offer(i)
    expect(calls).toEqual([])
    inbox.offer(4)
    inbox.offer(5)
    expect(calls).toEqual(["pause"])
    inbox.shift() // 5 left
    inbox.shift() // 4
    inbox.shift() // 3
    inbox.shift() // 2: not below lowWater
    expect(calls).toEqual(["pause"])
    inbox.shift() // 1
    expect(calls).toEqual(["pause", "resume"])
    inbox.shift()
    expect(calls).toEqual(["pause", "resume"])
  })

  it("an item handed to a waiter counts as taken for resuming", async () => {
    const calls: Array<string> = []
    const inbox = Inbox.make<number>({
      highWater: 1,
      lowWater: 1,
      pause: () => calls.push("pause"),
      resume: () => calls.push("resume")
    })
    inbox.offer(1)
    inbox.offer(2)
    expect(calls).toEqual(["pause"])
    const got: Array<number> = []
    inbox.wait((item) => got.push(item)) // takes 1 at once: 1 left, not below 1
    expect(calls).toEqual(["pause"])
    inbox.wait((item) => got.push(item)) // takes 2: none left
    expect(got).toEqual([1, 2])
    expect(calls).toEqual(["pause", "resume"])
  })

  it("without marks, pauses past defaultHighWater and resumes below defaultLowWater", () => {
    const calls: Array<string> = []
    const inbox = Inbox.make<number>({ pause: () => calls.push("pause"), resume: () => calls.push("resume") })
    for (let i = 0; i < Inbox.defaultHighWater; i++) inbox.offer(i)
    expect(calls).toEqual([])
    inbox.offer(-1)
    expect(calls).toEqual(["pause"])
    while (inbox.size() >= Inbox.defaultLowWater) inbox.shift()
    expect(calls).toEqual(["pause", "resume"])
    expect(inbox.size()).toBe(Inbox.defaultLowWater - 1)
  })
})
