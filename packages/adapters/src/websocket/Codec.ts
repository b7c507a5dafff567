/**
 * Codec: how a WebSocket text frame becomes an update payload.
 *
 * `raw` hands the text (or the bytes of a binary frame) through untouched. `json(schema)` parses
 * the text as JSON and decodes it with a Schema; a frame that is not JSON or does not match is a
 * typed `DecodeError`, and the adapter either closes the connection with 1007 or answers with an
 * error frame and goes on, as configured.
 */
import { Data, Exit, Schema } from "effect"

/** A text frame that the codec could not decode. */
export class DecodeError extends Data.TaggedError("DecodeError")<{
  readonly connection: string
  readonly reason: string
}> {
  override get message(): string {
    return `connection ${this.connection}: malformed message: ${this.reason}`
  }
}

export type OnMalformed = "close" | "error-frame"

export interface Codec<A = unknown> {
  readonly _tag: "raw" | "json"
  /** What a malformed text frame does: close with 1007, or answer `{"error":...}` and go on. */
  readonly onMalformed: OnMalformed
  /** Decodes a text frame; `Exit.fail(reason)` when it is malformed. */
  readonly decode: (text: string) => Exit.Exit<A, string>
}

/** Text frames pass through as strings. */
export const raw: Codec<string> = {
  _tag: "raw",
  onMalformed: "close",
  decode: (text) => Exit.succeed(text)
}

/**
 * JSON decoded with `schema`.
 *
 * ```ts import.meta.vitest
 * import { Exit, Schema } from "effect"
 * import { expect } from "vitest"
 * import * as Codec from "./Codec.ts"
 * const codec = Codec.json(Schema.Struct({ say: Schema.String }))
 * expect(Exit.isSuccess(codec.decode('{"say":"hi"}'))).toBe(true)
 * expect(Exit.isFailure(codec.decode("{not json"))).toBe(true)
 * expect(Exit.isFailure(codec.decode('{"say":1}'))).toBe(true)
 * ```
 */
export const json = <S extends Schema.ConstraintDecoder<unknown>>(
  schema: S,
  options: { readonly onMalformed?: OnMalformed | undefined } = {}
): Codec<S["Type"]> => {
  const decode = Schema.decodeUnknownExit(schema)
  return {
    _tag: "json",
    onMalformed: options.onMalformed ?? "close",
    decode: (text) => {
      let value: unknown
      try {
        value = JSON.parse(text)
      } catch (e) {
        return Exit.fail(`not JSON: ${e instanceof Error ? e.message : String(e)}`)
      }
      const exit = decode(value)
      return Exit.isSuccess(exit) ? Exit.succeed(exit.value) : Exit.fail(`does not match the schema: ${exit.cause.toString().split("\n")[0]}`)
    }
  }
}
