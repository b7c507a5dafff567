/**
 * Scaffold: writes a new bot project to disk.
 *
 * Refuses a non-empty target unless forced (and then only overwrites the files it writes), and
 * fails with a typed error that says what to do.
 */
import { Data, Effect, FileSystem, Path } from "effect"
import * as Adapters from "./Adapters.ts"
import * as Name from "./Name.ts"
import * as Templates from "./Templates.ts"

export class TargetNotEmpty extends Data.TaggedError("TargetNotEmpty")<{ readonly dir: string; readonly entries: number }> {
  override get message(): string {
    return `${this.dir} is not empty (${this.entries} entries); choose another --dir or pass --force to write into it`
  }
}

export interface Options extends Templates.ProjectOptions {
  /** The project folder. */
  readonly dir: string
  readonly force: boolean
}

/** Adapter pieces for the generated project, by kind. */
export const adapterTemplates: Partial<Record<Templates.AdapterKind, Templates.AdapterTemplate>> = Adapters.templates

export const files = (o: Templates.ProjectOptions): Record<string, string> => {
  const templates = o.adapters.flatMap((k) => {
    const t = adapterTemplates[k]
    return t === undefined ? [] : [t]
  })
  const workspace = Templates.pnpmWorkspace(o)
  return {
    "package.json": Templates.packageJson(o),
    ...(workspace === undefined ? {} : { "pnpm-workspace.yaml": workspace }),
    "tsconfig.json": Templates.tsconfig(),
    ".gitignore": Templates.gitignore(),
    ".env.example": Templates.envExample(templates),
    "README.md": Templates.readme(o, templates),
    "src/bot.ts": Templates.botTs(),
    "src/main.ts": Templates.mainTs(o, templates),
    "test/bot.test.ts": Templates.botTest(),
    ...Object.fromEntries(templates.map((t) => [`test/${t.kind}.test.ts`, t.test]))
  }
}

export const scaffold = (o: Options) =>
  Effect.gen(function*() {
    yield* Name.validate(o.name)
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const dir = path.resolve(o.dir)
    if (yield* fs.exists(dir)) {
      const entries = yield* fs.readDirectory(dir)
      if (entries.length > 0 && !o.force) return yield* new TargetNotEmpty({ dir, entries: entries.length })
    }
    const written: Array<string> = []
    for (const [file, content] of Object.entries(files(o))) {
      const target = path.join(dir, file)
      yield* fs.makeDirectory(path.dirname(target), { recursive: true })
      yield* fs.writeFileString(target, content)
      written.push(file)
    }
    return { dir, files: written }
  })
