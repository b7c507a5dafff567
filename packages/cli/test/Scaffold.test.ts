import { NodeServices } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Scaffold } from "fiberbot"

const options = (dir: string, extra: Partial<Scaffold.Options> = {}): Scaffold.Options => ({
  name: "my-bot",
  dir,
  adapters: [],
  packageManager: "pnpm",
  force: false,
  source: { _tag: "Registry", version: "0.1.0" },
  ...extra
})

describe("Scaffold", () => {
  it.effect("writes the project: package.json with the scripts, sources, a test, .env.example, README", () =>
    Effect.gen(function*() {
      const dir = join(mkdtempSync(join(tmpdir(), "fiberbot-new-")), "my-bot")
      const result = yield* Scaffold.scaffold(options(dir))
      assert.deepStrictEqual([...result.files].sort(), [".env.example", ".gitignore", "README.md", "package.json", "src/bot.ts", "src/main.ts", "test/bot.test.ts", "tsconfig.json"])
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"))
      assert.deepStrictEqual(Object.keys(pkg.scripts).sort(), ["check", "dev", "start", "test", "typecheck"])
      assert.strictEqual(pkg.name, "my-bot")
      assert.include(readFileSync(join(dir, "test/bot.test.ts"), "utf8"), "LeakCheck.verify")
      assert.include(readFileSync(join(dir, "src/bot.ts"), "utf8"), "Supervisor.periodic")
    }).pipe(Effect.provide(NodeServices.layer)))

  it.effect("refuses a non-empty directory without --force, and writes into it with --force", () =>
    Effect.gen(function*() {
      const dir = mkdtempSync(join(tmpdir(), "fiberbot-new-"))
      writeFileSync(join(dir, "notes.txt"), "mine")
      const error = yield* Effect.flip(Scaffold.scaffold(options(dir)))
      assert.strictEqual(error._tag, "TargetNotEmpty")
      assert.include(error.message, "--force")
      yield* Scaffold.scaffold(options(dir, { force: true }))
      assert.strictEqual(readFileSync(join(dir, "notes.txt"), "utf8"), "mine")
    }).pipe(Effect.provide(NodeServices.layer)))

  it.effect("an invalid name fails before anything is written", () =>
    Effect.gen(function*() {
      const dir = join(mkdtempSync(join(tmpdir(), "fiberbot-new-")), "x")
      const error = yield* Effect.flip(Scaffold.scaffold(options(dir, { name: "Bad Name" })))
      assert.strictEqual(error._tag, "InvalidName")
    }).pipe(Effect.provide(NodeServices.layer)))

  it("points @fiberbot packages at pnpm pack tarballs when asked", () => {
    const files = Scaffold.files({ name: "b", adapters: [], packageManager: "npm", source: { _tag: "Tarballs", dir: "/tmp/tgz/" } })
    const pkg = JSON.parse(files["package.json"]!)
    assert.strictEqual(pkg.dependencies["@fiberbot/core"], "file:/tmp/tgz/fiberbot-core-0.1.0.tgz")
    assert.strictEqual(pkg.overrides["@fiberbot/core"], "file:/tmp/tgz/fiberbot-core-0.1.0.tgz") // npm
    const withPnpm = Scaffold.files({ name: "b", adapters: ["telegram"], packageManager: "pnpm", source: { _tag: "Tarballs", dir: "/tmp/tgz" } })
    assert.include(withPnpm["pnpm-workspace.yaml"]!, `"@fiberbot/core": "file:/tmp/tgz/fiberbot-core-0.1.0.tgz"`)
    assert.include(withPnpm["test/telegram.test.ts"]!, "LeakCheck.verify")
    assert.include(files["README.md"]!, "npm test")
  })
})
