// The examples in our JSDoc (fenced as ```ts import.meta.vitest, as Effect does) are run here, so
// they never rot: each becomes a module under test/.examples/ that is imported inside a test.
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { describe, it } from "vitest"

const src = fileURLToPath(new URL("../src/", import.meta.url))
const out = fileURLToPath(new URL("./.examples/", import.meta.url))
rmSync(out, { recursive: true, force: true })
mkdirSync(out, { recursive: true })

const FENCE = /```ts import\.meta\.vitest\n([\s\S]*?)```/g

const examples = readdirSync(src, { recursive: true, encoding: "utf8" })
  .filter((f) => f.endsWith(".ts"))
  .flatMap((file) => {
    const text = readFileSync(src + file, "utf8")
    return [...text.matchAll(FENCE)].map((m, i) => {
      const code = m[1]!
        .split("\n")
        .map((line) => line.replace(/^\s*\* ?/, ""))
        .join("\n")
        .replace(/from "\.\/([^"]+)"/g, (_, rel: string) => `from ${JSON.stringify(src + file.replace(/[^/]*$/, "") + rel)}`)
      const path = `${out}${file.replace(/[/.]/g, "_")}_${i + 1}.ts`
      writeFileSync(path, code)
      return { name: `${file} example ${i + 1}`, path }
    })
  })

describe("JSDoc examples", () => {
  it("there are examples to run", ({ expect }) => {
    expect(examples.length).toBeGreaterThan(2)
  })
  for (const example of examples) {
    it(example.name, async () => {
      await import(example.path)
    })
  }
})
