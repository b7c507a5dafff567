/**
 * Cli: the `fiberbot` command, built with effect/cli.
 *
 * `fiberbot new <name>` scaffolds a bot project. Without options in a terminal it asks for the
 * adapters and the package manager; in scripts, flags say everything.
 */
import { Console, Duration, Effect, Option, Redacted } from "effect"
import { Argument, Command, Flag, Prompt } from "effect/cli"
import * as Inspect from "./Inspect.ts"
import * as Name from "./Name.ts"
import * as Scaffold from "./Scaffold.ts"
import * as Templates from "./Templates.ts"

const adapterFlag = Flag.Literals("adapter", Templates.adapterKinds).pipe(
  Flag.withAlias("a"),
  Flag.withDescription("An adapter for the bot (repeatable): websocket, telegram or discord"),
  Flag.atLeast(0)
)

const interactive = () => process.stdin.isTTY === true && process.stdout.isTTY === true

const newCommand = Command.make(
  "new",
  {
    name: Argument.String("name").pipe(Argument.withDescription("The bot project's name (an npm package name)")),
    adapters: adapterFlag,
    dir: Flag.String("dir").pipe(Flag.withDescription("Where to create the project (default: ./<name>)"), Flag.optional),
    packageManager: Flag.Literals("package-manager", ["pnpm", "npm"]).pipe(
      Flag.withDescription("The package manager the project's scripts and README use"),
      Flag.optional
    ),
    force: Flag.Boolean("force").pipe(Flag.withDescription("Write into a non-empty directory"), Flag.withDefault(false)),
    fiberbotTarballs: Flag.String("fiberbot-tarballs").pipe(
      Flag.withDescription("Take @fiberbot packages from `pnpm pack` tarballs in this directory (until they are published)"),
      Flag.optional
    )
  },
  Effect.fnUntraced(function*(input) {
    yield* Name.validate(input.name)
    const asked = interactive() && input.adapters.length === 0 && Option.isNone(input.packageManager)
    const adapters = asked
      ? yield* Prompt.run(Prompt.MultiSelect({
        message: "Adapters",
        choices: Templates.adapterKinds.map((k) => ({ title: k, value: k, selected: k === "websocket" }))
      }))
      : input.adapters
    const packageManager = asked
      ? yield* Prompt.run(Prompt.Select({
        message: "Package manager",
        choices: [{ title: "pnpm", value: "pnpm" as const }, { title: "npm", value: "npm" as const }]
      }))
      : Option.getOrElse(input.packageManager, () => "pnpm" as const)
    const result = yield* Scaffold.scaffold({
      name: input.name,
      dir: Option.getOrElse(input.dir, () => Name.folderOf(input.name)),
      adapters: [...new Set(adapters)],
      packageManager,
      force: input.force,
      source: Option.match(input.fiberbotTarballs, {
        onNone: (): Templates.Source => ({ _tag: "Registry", version: "0.1.0" }),
        onSome: (dir): Templates.Source => ({ _tag: "Tarballs", dir })
      })
    })
    const pm = packageManager
    yield* Console.log(`created ${input.name} in ${result.dir} (${result.files.length} files)\n\nnext:\n  cd ${result.dir}\n  ${pm} install\n  ${pm} test\n  ${pm} start`)
  })
).pipe(Command.withDescription("Scaffold a new bot project"))

const inspectCommand = Command.make(
  "inspect",
  {
    url: Argument.String("url").pipe(Argument.withDescription("The bot process's debug server, e.g. http://127.0.0.1:9464")),
    once: Flag.Boolean("once").pipe(Flag.withDescription("Print one snapshot and exit"), Flag.withDefault(false)),
    json: Flag.Boolean("json").pipe(Flag.withDescription("Print snapshots as JSON (one per line)"), Flag.withDefault(false)),
    interval: Flag.Int("interval").pipe(Flag.withDescription("Seconds between refreshes"), Flag.withDefault(1)),
    token: Flag.Redacted("token").pipe(Flag.withDescription("Bearer token of the debug server (or FIBERBOT_DEBUG_TOKEN)"), Flag.optional)
  },
  Effect.fnUntraced(function*(input) {
    const env = process.env.FIBERBOT_DEBUG_TOKEN
    const token = Option.getOrElse(input.token, () => (env === undefined || env === "" ? undefined : Redacted.make(env)))
    const show = (s: Inspect.Snapshot) =>
      input.json ? Console.log(JSON.stringify(s)) : Console.log(`${input.once ? "" : "\u001b[2J\u001b[H"}${Inspect.render(s)}`)
    const take = Inspect.snapshot(input.url, { token })
    if (input.once) return yield* Effect.flatMap(take, show)
    // Like top: refresh until interrupted (Ctrl-C); a failed refresh is fatal, with its reason.
    yield* Effect.flatMap(take, show).pipe(
      Effect.andThen(Effect.sleep(Duration.seconds(Math.max(1, input.interval)))),
      Effect.forever
    )
  })
).pipe(Command.withDescription("Show a running bot's bots, tasks and live fibers, refreshing like top"))

export const cli = Command.make("fiberbot").pipe(
  Command.withDescription("fiberbot: bots where nothing runs without an owner"),
  Command.withSubcommands([newCommand, inspectCommand])
)

export const run = Command.run(cli, { version: "0.1.0" })
