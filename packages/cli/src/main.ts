// fiberbot:edge the CLI process entry point
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Console, Effect } from "effect"
import { run } from "./Cli.ts"

// Our own errors say what to do; print their message alone and exit 1, without a stack trace.
run.pipe(
  Effect.tapError((error) =>
    typeof error === "object" && error !== null && "_tag" in error && (error._tag === "InvalidName" || error._tag === "TargetNotEmpty" || error._tag === "InspectError")
      ? Console.error(`fiberbot: ${(error as unknown as Error).message}`)
      : Effect.void
  ),
  Effect.provide(NodeServices.layer),
  NodeRuntime.runMain({ disableErrorReporting: true })
)
