// Issue 21's size rule, measured: every function (declaration, arrow,
// function expression, method) of at least <min-lines> lines, and every file
// over 600 lines with its code-only count (no blank or comment lines: the
// public modules are mostly JSDoc), longest first.
//
//   node scripts/measure-structure.mjs [min-lines] [dir-or-file...]
//
// Defaults: 120 lines, the three packages' src.
import ts from "typescript"
import fs from "node:fs"
import path from "node:path"
const [min = "120", ...given] = process.argv.slice(2)
const dirs = given.length > 0 ? given : ["packages/core/src", "packages/effect3/src", "packages/effect4/src"]
const walk = (d) => !fs.statSync(d).isDirectory() ? [d] : fs.readdirSync(d, { withFileTypes: true }).flatMap((e) =>
  e.isDirectory() ? walk(path.join(d, e.name)) : e.name.endsWith(".ts") ? [path.join(d, e.name)] : [])
const rows = []
for (const file of dirs.flatMap(walk)) {
  const text = fs.readFileSync(file, "utf8")
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true)
  const lines = text.split("\n").length
  // Code-only lines: not blank, not in a comment.
  let code = 0
  const scanner = text.split("\n")
  let inBlock = false
  for (const l of scanner) {
    const t = l.trim()
    if (inBlock) { if (t.includes("*/")) inBlock = false; continue }
    if (t === "" || t.startsWith("//")) continue
    if (t.startsWith("/*")) { if (!t.includes("*/")) inBlock = true; continue }
    code++
  }
  if (lines > 600) rows.push({ kind: "file", file, lines, code })
  const visit = (node) => {
    if (ts.isFunctionDeclaration(node) || ts.isArrowFunction(node) || ts.isFunctionExpression(node) || ts.isMethodDeclaration(node)) {
      const s = sf.getLineAndCharacterOfPosition(node.getStart()).line
      const e = sf.getLineAndCharacterOfPosition(node.getEnd()).line
      const n = e - s + 1
      if (n >= Number(min)) {
        let name = node.name?.getText?.()
        if (!name && ts.isVariableDeclaration(node.parent)) name = node.parent.name.getText()
        if (!name && ts.isPropertyAssignment(node.parent)) name = node.parent.name.getText()
        rows.push({ kind: "fn", file, line: s + 1, lines: n, name: name ?? "(anonymous)" })
      }
    }
    ts.forEachChild(node, visit)
  }
  visit(sf)
}
rows.sort((a, b) => b.lines - a.lines)
for (const r of rows) console.log(r.kind === "file" ? `FILE ${r.lines} (code ${r.code}) ${r.file}` : `FN ${r.lines} ${r.file}:${r.line} ${r.name}`)
