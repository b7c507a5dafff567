/**
 * Interactions: Discord's HTTP interactions endpoint (the alternative to receiving them on the gateway).
 *
 * Every request is verified before anything else: an Ed25519 signature (`X-Signature-Ed25519`) over
 * `X-Signature-Timestamp` + the raw body, with the application's public key; anything else gets 401
 * (Discord sends deliberately bad signatures to check). Bodies are size-limited and validated with
 * Schema; PING is answered with PONG. Discord wants an answer within 3 s, so when the handler has
 * not replied by `deferAfterMs` the request is answered with a deferred response and the handler's
 * reply goes out later as an edit of the original response.
 */
import { createPublicKey, verify as cryptoVerify, type KeyObject } from "node:crypto"
import type { IncomingMessage, ServerResponse } from "node:http"
import { Effect, Schema } from "effect"

const SPKI_ED25519_PREFIX = Buffer.from("302a300506032b6570032100", "hex")

/** Builds a verifier for a hex public key; throws on a malformed key (a configuration error). */
export const makeVerifier = (publicKeyHex: string): ((signatureHex: string, timestamp: string, body: Buffer) => boolean) => {
  if (!/^[0-9a-fA-F]{64}$/.test(publicKeyHex)) throw new Error("the interactions public key must be 64 hex characters")
  const key: KeyObject = createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, Buffer.from(publicKeyHex, "hex")]), format: "der", type: "spki" })
  return (signatureHex, timestamp, body) => {
    if (!/^[0-9a-fA-F]{128}$/.test(signatureHex) || timestamp.length === 0 || timestamp.length > 32) return false
    try {
      return cryptoVerify(null, Buffer.concat([Buffer.from(timestamp, "utf8"), body]), key, Buffer.from(signatureHex, "hex"))
    } catch {
      return false
    }
  }
}

/** The fields we rely on; the rest of the payload is passed through as is. */
export const InteractionBody = Schema.Struct({
  id: Schema.String,
  application_id: Schema.String,
  type: Schema.Literals([1, 2, 3, 4, 5]),
  token: Schema.String,
  channel_id: Schema.optional(Schema.String),
  data: Schema.optional(Schema.Unknown)
})
export type InteractionBody = typeof InteractionBody.Type

const decodeBody = Schema.decodeUnknownExit(InteractionBody)

export type Verdict =
  | { readonly _tag: "reply"; readonly status: number; readonly body: unknown }
  | { readonly _tag: "interaction"; readonly body: InteractionBody; readonly raw: unknown }

/** Checks one request (signature, JSON, shape); says what to answer or hands over the interaction. */
export const check = (
  verifier: (signatureHex: string, timestamp: string, body: Buffer) => boolean,
  headers: IncomingMessage["headers"],
  raw: Buffer
): Verdict => {
  const signature = headers["x-signature-ed25519"]
  const timestamp = headers["x-signature-timestamp"]
  if (typeof signature !== "string" || typeof timestamp !== "string" || !verifier(signature, timestamp, raw)) {
    return { _tag: "reply", status: 401, body: { error: "invalid request signature" } }
  }
  let json: unknown
  try {
    json = JSON.parse(raw.toString("utf8"))
  } catch {
    return { _tag: "reply", status: 400, body: { error: "body is not JSON" } }
  }
  const decoded = decodeBody(json)
  if (decoded._tag === "Failure") return { _tag: "reply", status: 400, body: { error: "not an interaction" } }
  if (decoded.value.type === 1) return { _tag: "reply", status: 200, body: { type: 1 } }
  return { _tag: "interaction", body: decoded.value, raw: json }
}

/** Reads a request body up to `limit` bytes; `undefined` when it is larger. */
export const readBody = (req: IncomingMessage, limit: number): Effect.Effect<Buffer | undefined> =>
  Effect.callback<Buffer | undefined>((resume) => {
    const declared = Number(req.headers["content-length"] ?? 0)
    if (declared > limit) {
      resume(Effect.succeed(undefined))
      return
    }
    const chunks: Array<Buffer> = []
    let size = 0
    let done = false
    req.on("data", (c: Buffer) => {
      if (done) return
      size += c.byteLength
      if (size > limit) {
        done = true
        resume(Effect.succeed(undefined))
        return
      }
      chunks.push(c)
    })
    req.on("end", () => {
      if (done) return
      done = true
      resume(Effect.succeed(Buffer.concat(chunks, size)))
    })
    req.on("error", () => {
      if (done) return
      done = true
      resume(Effect.succeed(undefined))
    })
  })

export const send = (res: ServerResponse, status: number, body: unknown): void => {
  if (res.headersSent || res.destroyed) return
  const text = JSON.stringify(body)
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) })
  res.end(text)
}
