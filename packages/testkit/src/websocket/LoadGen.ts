/**
 * LoadGen: spawns the load generator process and reads its JSON lines.
 *
 * The generator runs outside the process under test so that its sockets and CPU do not blur the
 * figures; this module owns the child in a Scope (killed at scope close) and gives every wait a
 * deadline: the result must come within the generator's time budget plus a margin.
 */
import { spawn as spawnChild, type ChildProcess } from "node:child_process"
import { fileURLToPath } from "node:url"
import { Data, Deferred, Duration, Effect, Exit, Scope } from "effect"
import type { Options } from "./load-process.ts"

export type { Options }

/** The generator's final line: counts per mode (see load-process.ts). */
export type Result = Readonly<Record<string, number | string | boolean>>

export class LoadGenError extends Data.TaggedError("LoadGenError")<{ readonly reason: string }> {
  override get message(): string {
    return `load generator: ${this.reason}`
  }
}

export interface Running {
  readonly child: ChildProcess
  /** Progress lines so far. */
  readonly progress: ReadonlyArray<Result>
  /** Resolves once the generator says it holds its connections (idle mode). */
  readonly ready: Effect.Effect<Result, LoadGenError>
  /** The final result; fails when the generator failed or missed its deadline. */
  readonly result: Effect.Effect<Result, LoadGenError>
  /** Asks an idle-mode generator to close its connections and finish. */
  readonly stop: Effect.Effect<void>
}

const entry = fileURLToPath(new URL(import.meta.url.endsWith(".ts") ? "./load-process.ts" : "./load-process.js", import.meta.url))

export const spawn = (options: Options): Effect.Effect<Running, never, Scope.Scope> =>
  Effect.gen(function*() {
    const ready = Deferred.makeUnsafe<Result, LoadGenError>()
    const done = Deferred.makeUnsafe<Result, LoadGenError>()
    const progress: Array<Result> = []
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => spawnChild(process.execPath, ["--max-old-space-size=2048", entry, JSON.stringify(options)], { stdio: ["pipe", "pipe", "inherit"] })),
      (c) => Effect.sync(() => {
        if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL")
      })
    )
    let buffer = ""
    child.stdout!.on("data", (chunk: Buffer) => {
      buffer += chunk.toString()
      let nl: number
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl)
        buffer = buffer.slice(nl + 1)
        let parsed: Result
        try {
          parsed = JSON.parse(line) as Result
        } catch {
          continue
        }
        if (parsed["ready"] === true) Deferred.doneUnsafe(ready, Exit.succeed(parsed))
        else if (parsed["done"] === true) {
          const error = parsed["error"]
          Deferred.doneUnsafe(done, typeof error === "string" ? Exit.fail(new LoadGenError({ reason: error })) : Exit.succeed(parsed))
        } else if (progress.length < 10_000) progress.push(parsed)
      }
    })
    child.once("exit", (code) => {
      const failed = Exit.fail(new LoadGenError({ reason: `exited with code ${code} before its result` }))
      Deferred.doneUnsafe(ready, failed)
      Deferred.doneUnsafe(done, failed)
    })
    const budget = Duration.seconds(options.seconds + 45)
    const bounded = (d: Deferred.Deferred<Result, LoadGenError>) =>
      Deferred.await(d).pipe(Effect.timeoutOrElse({
        duration: budget,
        orElse: () => Effect.fail(new LoadGenError({ reason: `no answer within ${Duration.format(budget)}` }))
      }))
    return {
      child,
      progress,
      ready: bounded(ready),
      result: bounded(done),
      stop: Effect.sync(() => {
        child.stdin?.write("stop\n")
      })
    }
  })
