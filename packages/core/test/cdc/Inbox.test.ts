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

  it("a wait on an empty inbox gets the next item offered, which is not buffered", () => {
    const inbox = Inbox.make<string>()
    const got: Array<string> = []
    inbox.wait((item) => got.push(item))
    expect(got).toEqual([])
    inbox.offer("a")
    expect(got).toEqual(["a"])
    expect(inbox.size()).toBe(0)
    // The waiter was used once: the next item is buffered.
    inbox.offer("b")
    expect(got).toEqual(["a"])
    expect(inbox.shift()).toBe("b")
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

  it("a withdrawn wait gets nothing, and the item stays buffered", () => {
    const inbox = Inbox.make<string>()
    const got: Array<string> = []
    const withdraw = inbox.wait((item) => got.push(item))
    withdraw()
    inbox.offer("a")
    expect(got).toEqual([])
    expect(inbox.shift()).toBe("a")
  })

  it("withdrawing a wait that was already served, or replaced, leaves the current waiter alone", () => {
    const inbox = Inbox.make<string>()
    const first: Array<string> = []
    const second: Array<string> = []
    const withdrawFirst = inbox.wait((item) => first.push(item))
    inbox.wait((item) => second.push(item))
    withdrawFirst()
    inbox.offer("a")
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
