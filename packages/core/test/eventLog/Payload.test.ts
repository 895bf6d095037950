import { describe, expect, it } from "vitest"
import * as Payload from "../../src/eventLog/Payload.js"

const nested = (depth: number): unknown => {
  let value: unknown = 1
  for (let i = 0; i < depth; i++) value = [value]
  return value
}

describe("jsonProblem", () => {
  it.each<[string, unknown]>([
    ["null", null],
    ["a boolean", true],
    ["a finite number", -1.5e300],
    ["a string with a surrogate pair", "emoji 😀"],
    ["an array", [1, "a", null, [false]]],
    ["a plain object", { a: { b: [1, 2] }, "key with space": "x" }],
    ["an object without prototype", Object.assign(Object.create(null), { a: 1 })],
    ["a value reached twice, not in a cycle", (() => {
      const shared = { x: 1 }
      return { a: shared, b: shared }
    })()]
  ])("accepts %s", (_, value) => {
    expect(Payload.jsonProblem(value)).toBeUndefined()
  })

  it("refuses a bigint, at its path, without quoting it", () => {
    const problem = Payload.jsonProblem({ amount: { cents: 12345678901234567890n } })
    expect(problem?.path).toBe("$.amount.cents")
    expect(problem?.reason).toMatch(/^a bigint, which JSON cannot hold/)
    expect(problem?.reason).not.toContain("1234567890")
  })

  it("refuses a cycle and names where it points", () => {
    const a: Record<string, unknown> = { list: [] }
    ;(a.list as Array<unknown>).push({ back: a })
    expect(Payload.jsonProblem({ a })).toEqual({
      path: "$.a.list[0].back",
      reason: "a circular reference (to $.a), which JSON cannot hold"
    })
  })

  it("refuses undefined nested in an object or an array", () => {
    expect(Payload.jsonProblem({ a: { b: undefined } })?.path).toBe("$.a.b")
    expect(Payload.jsonProblem([1, undefined])?.path).toBe("$[1]")
    expect(Payload.jsonProblem(undefined)?.reason).toMatch(/^undefined, which JSON cannot hold/)
  })

  it.each([NaN, Infinity, -Infinity])("refuses the number %s", (n) => {
    expect(Payload.jsonProblem({ n })).toEqual({
      path: "$.n",
      reason: "a number that is not finite (NaN, ±Infinity, or beyond the double range): JSON has none"
    })
  })

  it("refuses symbols as values and as keys, and functions", () => {
    expect(Payload.jsonProblem({ s: Symbol("x") })).toEqual({ path: "$.s", reason: "a symbol, which JSON cannot hold" })
    expect(Payload.jsonProblem({ [Symbol("k")]: 1 })).toEqual({
      path: "$",
      reason: "an object with symbol keys, which JSON.stringify would drop"
    })
    expect(Payload.jsonProblem([() => 1])).toEqual({ path: "$[0]", reason: "a function, which JSON cannot hold" })
  })

  it("refuses lone surrogates and U+0000 in strings and keys", () => {
    expect(Payload.jsonProblem({ a: "x\uD800y" })?.reason).toMatch(/^a string that contains a lone UTF-16 surrogate/)
    expect(Payload.jsonProblem({ a: "\uDC00" })?.path).toBe("$.a")
    expect(Payload.jsonProblem(["a\u0000"])?.reason).toMatch(/^a string that contains U\+0000/)
    expect(Payload.jsonProblem({ "k\uD83D": 1 })).toMatchObject({
      path: "$[\"k\\ud83d\"]",
      reason: expect.stringMatching(/^a key that contains a lone UTF-16 surrogate/)
    })
  })

  it("refuses holes, class instances, Dates and Maps", () => {
    // eslint-disable-next-line no-sparse-arrays
    expect(Payload.jsonProblem([1, , 3])).toEqual({
      path: "$[1]",
      reason: "an empty array slot (JSON.stringify would write null)"
    })
    expect(Payload.jsonProblem({ at: new Date(0) })?.reason).toMatch(/^a Date, not a plain object/)
    expect(Payload.jsonProblem(new Map())?.reason).toMatch(/^a Map, not a plain object/)
    class Point {
      x = 1
    }
    expect(Payload.jsonProblem({ p: new Point() })?.reason).toMatch(/^a Point, not a plain object/)
  })

  it(`accepts ${Payload.maxPayloadDepth} levels of nesting and refuses one more`, () => {
    expect(Payload.jsonProblem(nested(Payload.maxPayloadDepth))).toBeUndefined()
    const problem = Payload.jsonProblem(nested(Payload.maxPayloadDepth + 1))
    expect(problem?.reason).toBe(`nesting deeper than ${Payload.maxPayloadDepth} levels`)
    expect(problem?.path).toBe(`$${"[0]".repeat(Payload.maxPayloadDepth)}`)
  })

  it("reports the first problem in order", () => {
    expect(Payload.jsonProblem({ a: 1, b: NaN, c: 1n })?.path).toBe("$.b")
  })
})

describe("payloadPath", () => {
  it("writes plain keys with a dot, others quoted, indexes in brackets", () => {
    expect(Payload.payloadPath([])).toBe("$")
    expect(Payload.payloadPath(["a", 0, "b c", "$ok_1"])).toBe("$.a[0][\"b c\"].$ok_1")
  })

  it("cuts a long quoted key at 64 characters", () => {
    expect(Payload.payloadPath(["-".repeat(100)])).toBe(`$["${"-".repeat(64)}…"]`)
  })
})

describe("toJson", () => {
  it("gives the JSON text of an accepted payload", () => {
    expect(Payload.toJson({ a: [1, "x"] })).toEqual({ _tag: "Json", text: "{\"a\":[1,\"x\"]}", value: { a: [1, "x"] } })
  })

  it("refuses what jsonProblem refuses", () => {
    expect(Payload.toJson({ n: 1n })).toMatchObject({ _tag: "Refused", path: "$.n" })
  })

  it("refuses a payload whose getter throws, keeping what it threw", () => {
    const boom = new Error("secret")
    const refused = Payload.toJson({
      get x() {
        throw boom
      }
    })
    expect(refused).toEqual({ _tag: "Refused", path: "$", reason: "reading the payload threw", cause: boom })
  })
})

describe("fromRawJson", () => {
  it("keeps the text as it is", () => {
    const text = "{ \"b\": 1,  \"a\": [true] }"
    expect(Payload.fromRawJson(text)).toEqual({ _tag: "Json", text, value: { b: 1, a: [true] } })
  })

  it("refuses text that is not a string", () => {
    expect(Payload.fromRawJson(42)).toEqual({ _tag: "Refused", path: "$", reason: "EventLog.rawJson needs a string" })
  })

  it("refuses invalid JSON without quoting it", () => {
    const refused = Payload.fromRawJson("{\"password\": hunter2}")
    expect(refused).toMatchObject({ _tag: "Refused", path: "$", reason: "the raw text is not valid JSON" })
    expect(refused._tag === "Refused" && refused.cause).toBeInstanceOf(SyntaxError)
  })

  it("refuses escapes jsonb cannot hold", () => {
    expect(Payload.fromRawJson("{\"a\": \"\\ud800\"}")).toMatchObject({ _tag: "Refused", path: "$.a" })
    expect(Payload.fromRawJson("[\"\\u0000\"]")).toMatchObject({ _tag: "Refused", path: "$[0]" })
  })

  it("refuses raw text nested too deep", () => {
    const depth = Payload.maxPayloadDepth + 1
    expect(Payload.fromRawJson(`${"[".repeat(depth)}1${"]".repeat(depth)}`)).toMatchObject({
      _tag: "Refused",
      reason: `nesting deeper than ${Payload.maxPayloadDepth} levels`
    })
  })
})
