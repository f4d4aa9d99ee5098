/**
 * Every Imagefile in the documentation (a fenced block marked `imagefile`) passes the checks of
 * `transient check`, so the docs cannot drift from the language.
 */
import assert from "node:assert/strict"
import { analyzeImagefile, hasErrors, renderDiagnostics } from "../../src/domain/imagefile/mod.ts"

const ROOT = new URL("../../", import.meta.url)
const DOCS = [
  "README.md",
  ...[...Deno.readDirSync(new URL("docs/", ROOT))]
    .filter((entry) => entry.name.endsWith(".md"))
    .map((entry) => `docs/${entry.name}`),
]

const snippets = (text: string) =>
  [...text.matchAll(/^```imagefile\n([\s\S]*?)^```$/gm)].map((match) => match[1]!)

Deno.test("the user guide has Imagefile snippets to check", () => {
  const guide = Deno.readTextFileSync(new URL("docs/guide.md", ROOT))
  assert.ok(snippets(guide).length >= 6, "docs/guide.md shows Imagefiles")
})

for (const doc of DOCS) {
  const text = Deno.readTextFileSync(new URL(doc, ROOT))
  for (const [i, snippet] of snippets(text).entries()) {
    Deno.test(`${doc}: Imagefile ${i + 1} passes transient check`, () => {
      const file = `${doc}#${i + 1}`
      const { diagnostics } = analyzeImagefile(snippet, file)
      assert.ok(!hasErrors(diagnostics), renderDiagnostics(diagnostics, snippet))
    })
  }
}

Deno.test("a broken snippet would be caught", () => {
  const [snippet] = snippets("```imagefile\nFROM scratch\nRUN true\n```\n")
  assert.ok(snippet)
  assert.ok(hasErrors(analyzeImagefile(snippet, "broken").diagnostics))
})
