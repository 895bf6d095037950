import { describe, expect, it } from "vitest"
import * as Retention from "../../src/cdc/Retention.js"

const MB = 1024 * 1024

describe("cdc/Retention", () => {
  it("a consumer behind by more than the bound, holding more than the bound, is over it", () => {
    const slot = { retainedBytes: 3 * MB, confirmed: "0/100000", currentLsn: "0/400000" }
    expect(Retention.behindBytes(slot)).toBe(3 * MB)
    expect(Retention.overBound(slot, MB)).toBe(true)
  })

  it("a caught-up consumer whose restart position has not moved yet is not over it", () => {
    const slot = { retainedBytes: 5 * MB, confirmed: "0/500000", currentLsn: "0/500100" }
    expect(Retention.behindBytes(slot)).toBe(0x100)
    expect(Retention.overBound(slot, MB)).toBe(false)
  })

  it("a slot holding less than the bound is within it however far behind the text says", () => {
    expect(Retention.overBound({ retainedBytes: MB / 2, confirmed: "0/0", currentLsn: "1/0" }, MB)).toBe(false)
  })

  it("a slot never consumed is behind by all it holds; a confirmed position past the current one counts as 0", () => {
    expect(Retention.behindBytes({ retainedBytes: 2 * MB, confirmed: null, currentLsn: "0/300000" })).toBe(2 * MB)
    expect(Retention.overBound({ retainedBytes: 2 * MB, confirmed: null, currentLsn: "0/300000" }, MB)).toBe(true)
    expect(Retention.behindBytes({ retainedBytes: 0, confirmed: "0/20", currentLsn: "0/10" })).toBe(0)
  })

  it("the dropped message names the slot, both figures and the bound", () => {
    const slot = { retainedBytes: 3 * MB, confirmed: "0/100000", currentLsn: "0/400000" }
    expect(Retention.droppedMessage("cdc_kept", slot, MB)).toBe(
      "slot cdc_kept held 3145728 bytes of WAL and its consumer was 3145728 bytes behind, over the rule's bound of 1048576: dropped; the next session starts over with a snapshot"
    )
  })
})
