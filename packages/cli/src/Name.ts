/**
 * Name: is a string usable as an npm package name (and so as a bot project's name)?
 *
 * The rules npm applies to new packages: at most 214 characters, lowercase, no leading dot or
 * underscore, no spaces or characters that need URL encoding, not a Node built-in module name,
 * optionally under a `@scope/`. The answer names the first rule broken, so the user can fix it.
 */
import { builtinModules } from "node:module"
import { Data, Effect } from "effect"

export class InvalidName extends Data.TaggedError("InvalidName")<{ readonly name: string; readonly reason: string }> {
  override get message(): string {
    return `"${this.name}" is not a valid npm package name: ${this.reason}`
  }
}

const SAFE = /^[a-z0-9][a-z0-9._~-]*$/

const checkPart = (part: string, what: string): string | undefined => {
  if (part.length === 0) return `the ${what} is empty`
  if (part.startsWith(".") || part.startsWith("_")) return `the ${what} cannot start with "${part[0]}"`
  if (part !== part.toLowerCase()) return `the ${what} must be lowercase`
  if (/\s/.test(part)) return `the ${what} cannot contain spaces`
  if (!SAFE.test(part)) return `the ${what} may only contain a-z, 0-9, ".", "_", "~" and "-"`
  return undefined
}

/** The reason `name` is not a valid package name, or `undefined` when it is. */
export const problem = (name: string): string | undefined => {
  if (name.length === 0) return "it is empty"
  if (name.length > 214) return "it is longer than 214 characters"
  if (name.trim() !== name) return "it has leading or trailing spaces"
  const scoped = /^@([^/]+)\/([^/]+)$/.exec(name)
  if (name.startsWith("@") && scoped === null) return `a scoped name looks like "@scope/name"`
  if (scoped !== null) return checkPart(scoped[1]!, "scope") ?? checkPart(scoped[2]!, "name")
  if (name.includes("/")) return `it contains "/" (only "@scope/name" may)`
  if (builtinModules.includes(name) || name === "node_modules" || name === "favicon.ico") return "it is a reserved name"
  return checkPart(name, "name")
}

export const validate = (name: string): Effect.Effect<string, InvalidName> => {
  const reason = problem(name)
  return reason === undefined ? Effect.succeed(name) : Effect.fail(new InvalidName({ name, reason }))
}

/** The folder a package name scaffolds into by default: `@acme/bot` → `bot`. */
export const folderOf = (name: string): string => name.replace(/^@[^/]+\//, "")
