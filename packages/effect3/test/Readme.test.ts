import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Path from "node:path"
import {
  type Block,
  compileBlocks,
  jsDocBlocks,
  markdownBlocks,
  missingJsDoc,
  publicModules
} from "../../../scripts/test-support/codeBlocks.js"

// Every TypeScript block of the READMEs for the Effect 3 line (fenced ```ts;
// blocks fenced ```ts effect4 are the Effect 4 line's, checked there), and
// every one in the JSDoc of the public modules (the `@example`s), is a
// complete program that compiles against the sources, importing the package
// by its name as a user would.
// `npm run docs` (docgen) compiles and runs the examples too; this is the
// fast check that `npm test` runs.

/** This package: its scratch directory sits inside it, so its node_modules and "type" apply. */
const pkg = Path.resolve(import.meta.dirname, "..")
const readmeBlocks = ["README.md", "packages/effect3/examples/README.md"].flatMap((document) => markdownBlocks(document))
const sources = ["packages/effect3/src", "packages/core/src"]
const exampleBlocks = sources.flatMap(publicModules).flatMap(jsDocBlocks)
const blocks: ReadonlyArray<Block> = [...readmeBlocks, ...exampleBlocks]
let compiled: ReturnType<typeof compileBlocks> | undefined

describe("code blocks in the READMEs and the JSDoc", () => {
  beforeAll(() => {
    compiled = compileBlocks(pkg, "effect-sql-router", blocks)
  })

  afterAll(() => compiled?.close())

  it("the README and the JSDoc have TypeScript blocks", () => {
    expect(readmeBlocks.length).toBeGreaterThan(0)
    expect(exampleBlocks.length).toBeGreaterThan(0)
  })

  it("the README's blocks fenced ts effect4 are not among them (they are Effect 4 code)", () => {
    const effect4 = markdownBlocks("README.md", "effect4").map((block) => block.line)
    expect(effect4.length).toBeGreaterThan(0)
    const lines = readmeBlocks.filter((block) => block.document === "README.md").map((block) => block.line)
    expect(lines.filter((line) => effect4.includes(line))).toEqual([])
  })

  it("the compiler options are valid", () => {
    expect(compiled!.optionsDiagnostics()).toEqual([])
  })

  it.each(blocks.map((block) => [`${block.document}:${block.line}`, block] as const))(
    "%s typechecks",
    (_, block) => {
      const diagnostics = compiled!.diagnostics(block)
      expect(diagnostics, `${block.document}:${block.line} is in the program`).toBeDefined()
      expect(diagnostics).toEqual([])
    }
  )
})

describe("JSDoc of the public modules", () => {
  it("every export has a description, @since and @category", () => {
    const modules = sources.flatMap(publicModules)
    expect(modules).toContain("packages/effect3/src/SqlRouter.ts")
    expect(modules).toContain("packages/core/src/Classifier.ts")
    expect(modules.flatMap(missingJsDoc)).toEqual([])
  })
})
