import { describe, expect, it } from "vitest"
import * as Discovery from "../src/Discovery.js"

describe("newestTimeline (which writable node of a split brain reads may trust)", () => {
  const node = (id: string, timeline: number | undefined) => ({ id, timeline })
  it("the only node on the highest timeline", () => {
    expect(Discovery.newestTimeline([node("old", 5), node("new", 6)])?.id).toBe("new")
    expect(Discovery.newestTimeline([node("new", 7), node("old", 5), node("older", 3)])?.id).toBe("new")
  })
  it("none when a tie or an unknown timeline leaves it open", () => {
    expect(Discovery.newestTimeline([node("a", 6), node("b", 6)])).toBeUndefined()
    expect(Discovery.newestTimeline([node("a", 6), node("b", 6), node("c", 4)])).toBeUndefined()
    expect(Discovery.newestTimeline([node("a", 5), node("b", undefined)])).toBeUndefined()
    expect(Discovery.newestTimeline([node("a", undefined), node("b", 9)])).toBeUndefined()
    expect(Discovery.newestTimeline([])).toBeUndefined()
  })
})
