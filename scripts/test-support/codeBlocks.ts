/**
 * What both lines' documentation checks share: the TypeScript blocks of
 * Markdown documents and of the JSDoc of public modules, a program that
 * typechecks them against a package's sources, and the house style's JSDoc
 * rule for every export. Each line's `test/Readme.test.ts` says which
 * documents, sources and fence are its own.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import ts from "typescript"
import { root } from "./packageCheck.js"

/** A fenced TypeScript block. */
export interface Block {
  /** Where the block is, relative to the repository. */
  readonly document: string
  /** 1-based line of the block's first code line in the document. */
  readonly line: number
  readonly code: string
}

/**
 * An opening fence of a TypeScript block: ```ts, or, with `tag`, ```ts <tag>
 * (blocks written for one line only, e.g. `effect4`).
 */
const openingFence = (tag: string | undefined): (line: string) => boolean =>
  tag === undefined
    ? (line) => /^```(ts|typescript)\s*$/.test(line)
    : (line) => line.replace(/\s+$/, "") === "```ts " + tag || line.replace(/\s+$/, "") === "```typescript " + tag
const isClosingFence = (line: string) => /^```\s*$/.test(line)

/**
 * The fenced blocks of a document whose lines are already stripped: a line
 * that is undefined (outside a comment, for sources) ends any open block.
 */
const fencedBlocks = (
  document: string,
  lines: ReadonlyArray<string | undefined>,
  isOpening: (line: string) => boolean
): Array<Block> => {
  const blocks: Array<Block> = []
  let start: number | undefined
  lines.forEach((line, i) => {
    if (line === undefined) {
      start = undefined
    } else if (start === undefined) {
      if (isOpening(line)) start = i + 1
    } else if (isClosingFence(line)) {
      blocks.push({ document, line: start + 1, code: lines.slice(start, i).join("\n") })
      start = undefined
    }
  })
  return blocks
}

const readLines = (document: string) => Fs.readFileSync(Path.join(root, document), "utf8").split("\n")

/** The TypeScript blocks of a Markdown document (with `tag`: only blocks fenced ```ts <tag>). */
export const markdownBlocks = (document: string, tag?: string): Array<Block> =>
  fencedBlocks(document, readLines(document), openingFence(tag))

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

/** The TypeScript blocks of the JSDoc comments of a source file. */
export const jsDocBlocks = (document: string): Array<Block> =>
  fencedBlocks(document, jsDocLines(readLines(document)), openingFence(undefined))

/** The public modules under `dir`: every `.ts` file outside `internal/` directories. */
export const publicModules = (dir: string): Array<string> =>
  Fs.readdirSync(Path.join(root, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = Path.posix.join(dir, entry.name)
    if (entry.isDirectory()) return entry.name === "internal" ? [] : publicModules(path)
    return entry.name.endsWith(".ts") ? [path] : []
  })

/**
 * The compiler options of the package in `pkg` (its tsconfig.json), with
 * the package's name mapped to its sources as a user imports it.
 */
export const compilerOptions = (pkg: string, name: string): ts.CompilerOptions => {
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
      [name]: [Path.join(pkg, "src/index.ts")],
      [`${name}/testing`]: [Path.join(pkg, "src/testing/index.ts")],
      [`${name}/*`]: [Path.join(pkg, "src/*.ts")],
      "@effect-sql-router/core/*": [Path.join(root, "packages/core/src/*.ts")]
    }
  }
}

/** A diagnostic at its place in the document. */
export const format = (block: Block, diagnostic: ts.Diagnostic): string => {
  const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n")
  if (diagnostic.file === undefined || diagnostic.start === undefined) return `${block.document}: ${message}`
  const { character, line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start)
  return `${block.document}:${block.line + line}:${character + 1} TS${diagnostic.code}: ${message}`
}

/**
 * Writes each block as its own module in a scratch directory inside `pkg`
 * (so that its node_modules and "type" apply) and makes one program of them.
 * `close` removes the directory.
 */
export const compileBlocks = (pkg: string, name: string, blocks: ReadonlyArray<Block>) => {
  Fs.mkdirSync(Path.join(pkg, ".tmp"), { recursive: true })
  const scratch = Fs.mkdtempSync(Path.join(pkg, ".tmp", "code-blocks-"))
  const files = new Map<Block, string>()
  blocks.forEach((block, i) => {
    const file = Path.join(scratch, `${block.document.replace(/\W/g, "_")}-${i}.ts`)
    // `export {}` keeps a block without imports a module, not a script.
    Fs.writeFileSync(file, `${block.code}\nexport {}\n`)
    files.set(block, file)
  })
  const program = ts.createProgram([...files.values()], compilerOptions(pkg, name))
  return {
    program,
    /** The program's own problems (options, globals). */
    optionsDiagnostics: (): Array<string> =>
      program.getOptionsDiagnostics().concat(program.getGlobalDiagnostics()).map((d) =>
        ts.flattenDiagnosticMessageText(d.messageText, "\n")
      ),
    /** The block's diagnostics, at their places; undefined when the block is not in the program. */
    diagnostics: (block: Block): Array<string> | undefined => {
      const source = program.getSourceFile(files.get(block)!)
      return source === undefined ? undefined : ts.getPreEmitDiagnostics(program, source).map((d) => format(block, d))
    },
    close: () => Fs.rmSync(scratch, { recursive: true, force: true })
  }
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
export const missingJsDoc = (document: string): Array<string> => {
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
