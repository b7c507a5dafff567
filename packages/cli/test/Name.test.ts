import { describe, expect, it } from "vitest"
import * as fc from "fast-check"
import { Name } from "fiberbot"

describe("Name", () => {
  it("accepts npm package names", () => {
    for (const ok of ["bot", "my-bot", "my.bot_2", "@acme/bot", "a".repeat(214)]) expect(Name.problem(ok)).toBeUndefined()
  })

  it("rejects each broken rule with a reason that says which", () => {
    expect(Name.problem("")).toBe("it is empty")
    expect(Name.problem("My_Bot")).toBe("the name must be lowercase")
    expect(Name.problem(".hidden")).toBe(`the name cannot start with "."`)
    expect(Name.problem("_private")).toBe(`the name cannot start with "_"`)
    expect(Name.problem("my bot")).toBe("the name cannot contain spaces")
    expect(Name.problem("bot!")).toContain("may only contain")
    expect(Name.problem("a".repeat(215))).toBe("it is longer than 214 characters")
    expect(Name.problem("fs")).toBe("it is a reserved name")
    expect(Name.problem("@acme")).toContain("@scope/name")
    expect(Name.problem("@Acme/bot")).toBe("the scope must be lowercase")
    expect(Name.problem("a/b")).toContain(`contains "/"`)
    expect(Name.problem("../../etc")).toBeDefined()
  })

  it("never throws, and whatever it accepts is safe as a folder name", () => {
    fc.assert(fc.property(fc.string({ maxLength: 300 }), (s) => {
      const problem = Name.problem(s)
      if (problem === undefined) {
        const folder = Name.folderOf(s)
        expect(folder).not.toMatch(/[\\/]|^\.\.?$/)
        expect(folder.length).toBeGreaterThan(0)
      }
    }))
  })
})
