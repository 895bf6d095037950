import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Path from "node:path"
import ts from "typescript"

// Every TypeScript block of the READMEs, and every one in the JSDoc of the
// public modules (the `@example`s), is a complete program that compiles
// against the sources, importing the package by its name as a user would.
// Each block is its own module in a scratch directory inside the repository
// (so that node_modules and the package's "type": "module" apply), and one
// program typechecks them all under the repository's compiler options.
// `npm run docs` (docgen) compiles and runs the examples too; this is the
// fast check that `npm test` runs.

/** The repository: documents are named from here. */
const root = Path.resolve(import.meta.dirname, "../../..")
/** This package: its scratch directory sits inside it, so its node_modules and "type" apply. */
const pkg = Path.resolve(import.meta.dirname, "..")
const documents = ["README.md", "packages/effect3/examples/README.md"]
const sources = ["packages/effect3/src", "packages/core/src"]

interface Block {
  /** Where the block is, relative to the repository. */
  readonly document: string
  /** 1-based line of the block's first code line in the document. */
  readonly line: number
  readonly code: string
}

const isOpeningFence = (line: string) => /^```(ts|typescript)\s*$/.test(line)
const isClosingFence = (line: string) => /^```\s*$/.test(line)

/**
 * The fenced blocks of a document whose lines are already stripped: a line
 * that is undefined (outside a comment, for sources) ends any open block.
 */
const fencedBlocks = (document: string, lines: ReadonlyArray<string | undefined>): Array<Block> => {
  const blocks: Array<Block> = []
  let start: number | undefined
  lines.forEach((line, i) => {
    if (line === undefined) {
      start = undefined
    } else if (start === undefined) {
      if (isOpeningFence(line)) start = i + 1
    } else if (isClosingFence(line)) {
      blocks.push({ document, line: start + 1, code: lines.slice(start, i).join("\n") })
      start = undefined
    }
  })
  return blocks
}

const readLines = (document: string) => Fs.readFileSync(Path.join(root, document), "utf8").split("\n")

const markdownBlocks = (document: string): Array<Block> => fencedBlocks(document, readLines(document))

/** Each line inside a JSDoc comment without its leading ` * `; undefined for every other line. */
const jsDocLines = (lines: ReadonlyArray<string>): Array<string | undefined> => {
  let inside = false
  return lines.map((line) => {
    const trimmed = line.trim()
    if (!inside && trimmed.startsWith("/**")) inside = !trimmed.endsWith("*/")
    else if (inside && trimmed.startsWith("*/")) inside = false
    else if (inside) return trimmed.replace(/^\* ?/, "")
    return undefined
  })
}

const jsDocBlocks = (document: string): Array<Block> => fencedBlocks(document, jsDocLines(readLines(document)))

/** The public modules under `dir`: every `.ts` file outside `internal/` directories. */
const publicModules = (dir: string): Array<string> =>
  Fs.readdirSync(Path.join(root, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = Path.posix.join(dir, entry.name)
    if (entry.isDirectory()) return entry.name === "internal" ? [] : publicModules(path)
    return entry.name.endsWith(".ts") ? [path] : []
  })

const compilerOptions = (): ts.CompilerOptions => {
  const configPath = Path.join(pkg, "tsconfig.json")
  const config = ts.readConfigFile(configPath, ts.sys.readFile)
  const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, pkg, undefined, configPath)
  return {
    ...parsed.options,
    noEmit: true,
    // A snippet declares what it shows; an unused name there is not a defect.
    noUnusedLocals: false,
    noUnusedParameters: false,
    paths: {
      "effect-sql-router": [Path.join(pkg, "src/index.ts")],
      "effect-sql-router/testing": [Path.join(pkg, "src/testing/index.ts")],
      "effect-sql-router/*": [Path.join(pkg, "src/*.ts")],
      "@effect-sql-router/core/*": [Path.join(root, "packages/core/src/*.ts")]
    }
  }
}

const format = (block: Block, diagnostic: ts.Diagnostic): string => {
  const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n")
  if (diagnostic.file === undefined || diagnostic.start === undefined) return `${block.document}: ${message}`
  const { character, line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start)
  return `${block.document}:${block.line + line}:${character + 1} TS${diagnostic.code}: ${message}`
}

/** The JSDoc tags and description of a node, from its last JSDoc comment. */
const jsDocOf = (node: ts.Node) => {
  const doc = ts.getJSDocCommentsAndTags(node).filter(ts.isJSDoc).at(-1)
  const description = typeof doc?.comment === "string" ? doc.comment.trim() : doc?.comment === undefined ? "" : "…"
  return { description, tags: new Set(doc?.tags?.map((tag) => tag.tagName.text) ?? []) }
}

const exportedName = (statement: ts.Statement): string | undefined => {
  if (ts.isExportDeclaration(statement)) {
    return statement.exportClause && ts.isNamespaceExport(statement.exportClause)
      ? statement.exportClause.name.text
      : undefined
  }
  const modifiers = ts.canHaveModifiers(statement) ? ts.getModifiers(statement) : undefined
  if (!modifiers?.some((modifier) => modifier.kind === ts.SyntaxKind.ExportKeyword)) return undefined
  if (ts.isVariableStatement(statement)) return statement.declarationList.declarations.map((d) => d.name.getText()).join()
  const name = (statement as ts.DeclarationStatement).name
  return name === undefined ? "default" : name.getText()
}

/**
 * What the house style asks of each export's JSDoc and is missing: a
 * description, `@since`, and `@category` (not for a namespace re-export).
 * Members of exported classes need `@since` (docgen lists them).
 */
const missingJsDoc = (document: string): Array<string> => {
  const source = ts.createSourceFile(document, readLines(document).join("\n"), ts.ScriptTarget.Latest, true)
  const at = (node: ts.Node) => `${document}:${source.getLineAndCharacterOfPosition(node.getStart()).line + 1}`
  return source.statements.flatMap((statement) => {
    const name = exportedName(statement)
    if (name === undefined) return []
    const { description, tags } = jsDocOf(statement)
    const missing = [
      description === "" ? "a description" : undefined,
      tags.has("since") ? undefined : "@since",
      tags.has("category") || ts.isExportDeclaration(statement) ? undefined : "@category"
    ].filter((m) => m !== undefined)
    const members = ts.isClassDeclaration(statement)
      ? statement.members.filter((member) =>
        member.name !== undefined && !ts.isConstructorDeclaration(member) && !jsDocOf(member).tags.has("since")
      ).map((member) => `${at(member)} ${name}.${member.name!.getText()}: @since`)
      : []
    return [...(missing.length > 0 ? [`${at(statement)} ${name}: ${missing.join(", ")}`] : []), ...members]
  })
}

const readmeBlocks = documents.flatMap(markdownBlocks)
const exampleBlocks = sources.flatMap(publicModules).flatMap(jsDocBlocks)
const blocks = [...readmeBlocks, ...exampleBlocks]
const files = new Map<Block, string>()
let scratch = ""
let program: ts.Program | undefined

describe("code blocks in the READMEs and the JSDoc", () => {
  beforeAll(() => {
    Fs.mkdirSync(Path.join(pkg, ".tmp"), { recursive: true })
    scratch = Fs.mkdtempSync(Path.join(pkg, ".tmp", "code-blocks-"))
    blocks.forEach((block, i) => {
      const file = Path.join(scratch, `${block.document.replace(/\W/g, "_")}-${i}.ts`)
      // `export {}` keeps a block without imports a module, not a script.
      Fs.writeFileSync(file, `${block.code}\nexport {}\n`)
      files.set(block, file)
    })
    program = ts.createProgram([...files.values()], compilerOptions())
  })

  afterAll(() => {
    if (scratch !== "") Fs.rmSync(scratch, { recursive: true, force: true })
  })

  it("the README and the JSDoc have TypeScript blocks", () => {
    expect(readmeBlocks.length).toBeGreaterThan(0)
    expect(exampleBlocks.length).toBeGreaterThan(0)
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
      const source = program!.getSourceFile(files.get(block)!)
      expect(source, `${block.document}:${block.line} is in the program`).toBeDefined()
      const diagnostics = ts.getPreEmitDiagnostics(program!, source).map((d) => format(block, d))
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
