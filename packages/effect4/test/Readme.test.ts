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

// Every TypeScript block of the READMEs for the Effect 4 line (in the root
// README the blocks fenced ```ts effect4, the others being the Effect 3
// line's; every block of this line's examples README), and every one in the
// JSDoc of the public modules (the `@example`s), is a complete program that
// compiles against the sources, importing the package by its name as a user would.
// `npm run docs` (docgen) compiles and runs the examples too; this is the
// fast check that `npm test` runs.

/** This package: its scratch directory sits inside it, so its node_modules and "type" apply. */
const pkg = Path.resolve(import.meta.dirname, "..")
const readmeBlocks = [
  ...markdownBlocks("README.md", "effect4"),
  ...markdownBlocks("packages/effect4/examples/README.md")
]
const sources = ["packages/effect4/src"]
const exampleBlocks = sources.flatMap(publicModules).flatMap(jsDocBlocks)
const blocks: ReadonlyArray<Block> = [...readmeBlocks, ...exampleBlocks]
let compiled: ReturnType<typeof compileBlocks> | undefined

describe("code blocks in the READMEs and the JSDoc", () => {
  beforeAll(() => {
    compiled = compileBlocks(pkg, "@effect-sql-router/effect4", blocks)
  })

  afterAll(() => compiled?.close())

  it("the README and the JSDoc have TypeScript blocks", () => {
    expect(readmeBlocks.filter((block) => block.document === "README.md").length).toBeGreaterThan(0)
    expect(exampleBlocks.length).toBeGreaterThan(0)
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
    expect(modules).toContain("packages/effect4/src/SqlRouter.ts")
    expect(modules.flatMap(missingJsDoc)).toEqual([])
  })
})
