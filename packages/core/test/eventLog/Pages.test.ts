import { describe, expect, it } from "vitest"
import * as Pages from "../../src/eventLog/Pages.js"

describe("paging", () => {
  it("defaults: forward from 1, backward from the newest, pages of 1000", () => {
    expect(Pages.paging({})).toEqual({ reverse: false, pageSize: 1000, start: 1 })
    expect(Pages.paging({ reverse: true })).toEqual({ reverse: true, pageSize: 1000, start: Number.MAX_SAFE_INTEGER })
    expect(Pages.paging({ atVersion: 7, pageSize: 2 })).toEqual({ reverse: false, pageSize: 2, start: 7 })
  })

  it("the next page follows a full one and stops after a short or empty one", () => {
    const forward = Pages.paging({ pageSize: 2 })
    expect(Pages.nextPage(forward, 2, 5)).toBe(6)
    expect(Pages.nextPage(forward, 1, 5)).toBeUndefined()
    expect(Pages.nextPage(forward, 0, undefined)).toBeUndefined()
  })

  it("backwards, stops below version 1", () => {
    const backward = Pages.paging({ reverse: true, pageSize: 2 })
    expect(Pages.nextPage(backward, 2, 5)).toBe(4)
    expect(Pages.nextPage(backward, 2, 1)).toBeUndefined()
  })
})
