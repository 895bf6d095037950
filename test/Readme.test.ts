import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Path from "node:path"
import ts from "typescript"

// Every TypeScript block of the READMEs is a complete program that compiles
// against the sources, importing the package by its name as a user would.
// Each block is its own module in a scratch directory inside the repository
// (so that node_modules and the package's "type": "module" apply), and one
// program typechecks them all under the repository's compiler options.

const root = Path.resolve(import.meta.dirname, "..")
const documents = ["README.md", "examples/README.md"]

interface Block {
  readonly document: string
  /** 1-based line of the block's first code line in the document. */
  readonly line: number
  readonly code: string
  file: string
}

const extractBlocks = (document: string): ReadonlyArray<Block> => {
  const lines = Fs.readFileSync(Path.join(root, document), "utf8").split("\n")
  const blocks: Array<Block> = []
  let start: number | undefined
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!
    if (start === undefined) {
      if (/^```(ts|typescript)\s*$/.test(line)) start = i + 1
    } else if (/^```\s*$/.test(line)) {
      blocks.push({ document, line: start + 1, code: lines.slice(start, i).join("\n"), file: "" })
      start = undefined
    }
  }
  return blocks
}

const compilerOptions = (): ts.CompilerOptions => {
  const configPath = Path.join(root, "tsconfig.json")
  const config = ts.readConfigFile(configPath, ts.sys.readFile)
  const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, root, undefined, configPath)
  return {
    ...parsed.options,
    noEmit: true,
    // A snippet declares what it shows; an unused name there is not a defect.
    noUnusedLocals: false,
    noUnusedParameters: false,
    paths: {
      "effect-sql-router": [Path.join(root, "src/index.ts")],
      "effect-sql-router/testing": [Path.join(root, "src/testing/index.ts")],
      "effect-sql-router/*": [Path.join(root, "src/*.ts")]
    }
  }
}

const format = (block: Block, diagnostic: ts.Diagnostic): string => {
  const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n")
  if (diagnostic.file === undefined || diagnostic.start === undefined) return `${block.document}: ${message}`
  const { character, line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start)
  return `${block.document}:${block.line + line}:${character + 1} TS${diagnostic.code}: ${message}`
}

const blocks = documents.flatMap(extractBlocks)
let scratch = ""
let program: ts.Program | undefined

describe("README code blocks", () => {
  beforeAll(() => {
    Fs.mkdirSync(Path.join(root, ".tmp"), { recursive: true })
    scratch = Fs.mkdtempSync(Path.join(root, ".tmp", "readme-"))
    blocks.forEach((block, i) => {
      block.file = Path.join(scratch, `${block.document.replace(/\W/g, "_")}-${i}.ts`)
      // `export {}` keeps a block without imports a module, not a script.
      Fs.writeFileSync(block.file, `${block.code}\nexport {}\n`)
    })
    program = ts.createProgram(blocks.map((block) => block.file), compilerOptions())
  })

  afterAll(() => {
    if (scratch !== "") Fs.rmSync(scratch, { recursive: true, force: true })
  })

  it("the READMEs have TypeScript blocks", () => {
    expect(blocks.length).toBeGreaterThan(0)
  })

  it("the compiler options are valid", () => {
    const messages = program!.getOptionsDiagnostics().concat(program!.getGlobalDiagnostics()).map((d) =>
      ts.flattenDiagnosticMessageText(d.messageText, "\n")
    )
    expect(messages).toEqual([])
  })

  it.each(blocks.map((block) => [`${block.document}:${block.line}`, block] as const))(
    "%s typechecks",
    (_, block) => {
      const source = program!.getSourceFile(block.file)
      expect(source, `${block.file} is in the program`).toBeDefined()
      const diagnostics = ts.getPreEmitDiagnostics(program!, source).map((d) => format(block, d))
      expect(diagnostics).toEqual([])
    }
  )
})
