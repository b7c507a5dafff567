import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { scan } from "./check-forks.ts"

const dirs: Array<string> = []
const tree = (files: Record<string, string>) => {
  const root = mkdtempSync(join(tmpdir(), "check-forks-"))
  dirs.push(root)
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(root, path, ".."), { recursive: true })
    writeFileSync(join(root, path), text)
  }
  return root
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

describe("check-forks", () => {
  it("flags unowned forks and raw timers with file and line", () => {
    const root = tree({
      "packages/core/src/Bad.ts": [
        "import { Effect } from \"effect\"",
        "export const a = Effect.forkDetach(Effect.never)",
        "export const b = () => Effect.runFork(Effect.void)",
        "export const c = () => Effect.runPromise(Effect.void)",
        "export const d = () => setTimeout(() => {}, 10)",
        "export const e = () => setInterval(() => {}, 10)",
        "export const f = (context) => Effect.runForkWith(context)(Effect.never)"
      ].join("\n")
    })
    const problems = scan(root, {})
    expect(problems.map((p) => p.split(":").slice(0, 2).join(":"))).toEqual([
      "packages/core/src/Bad.ts:2",
      "packages/core/src/Bad.ts:3",
      "packages/core/src/Bad.ts:4",
      "packages/core/src/Bad.ts:5",
      "packages/core/src/Bad.ts:6",
      "packages/core/src/Bad.ts:7"
    ])
  })

  it("passes owned forks, comments, doc examples and allowlisted edge files", () => {
    const root = tree({
      "packages/core/src/Good.ts": [
        "// Effect.forkDetach is not used here",
        "/**",
        " * Effect.runFork(example) in a doc comment",
        " */",
        "export const a = Effect.forkScoped(Effect.never)",
        "export const b = Effect.forkIn(Effect.never, scope)",
        "export const c = clock.setTimeout",
        "export const d = Effect.runForkWith(context) // fiberbot:owned every fiber goes into the set closed with the scope"
      ].join("\n"),
      "packages/core/src/Main.ts": "Effect.runFork(main)\nsetTimeout(exit, 1000)",
      "packages/bench/src/run.ts": "// fiberbot:edge a benchmark entry point\nEffect.runPromise(main)",
      "packages/bench/src/late.ts": "const x = 1\n\n\n\n\n\n// fiberbot:edge too late to count\nEffect.runPromise(main)"
    })
    expect(scan(root, { "packages/core/src/Main.ts": "entry point" }).map((p) => p.split(":")[0])).toEqual(["packages/bench/src/late.ts"])
  })

  it("the workspace itself is clean", () => {
    expect(scan(new URL("..", import.meta.url).pathname)).toEqual([])
  })
})
