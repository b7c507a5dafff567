/**
 * Reading an HTTP response body that came off the network, with a size limit: the Discord REST
 * client and the Telegram Bot API client both read whole answers into memory.
 */
import type { Dispatcher } from "undici"

/** A response body over the limit, declared up front or found while reading. */
export class BodyTooLarge extends Error {}

/**
 * The body as UTF-8 text, or `BodyTooLarge` (thrown) once it passes `maxBytes`: at once when its
 * `content-length` says so, else as soon as the bytes read pass it. The rest is not read.
 */
export const readText = async (response: Dispatcher.ResponseData, maxBytes: number): Promise<string> => {
  const body = response.body
  const refuse = (detail: string) => {
    // nobody reads the body now: the abort's error must not surface as unhandled
    body.on("error", () => undefined)
    body.destroy()
    return new BodyTooLarge(detail)
  }
  const declared = Number(response.headers["content-length"])
  if (declared > maxBytes) throw refuse(`the answer declares ${declared} bytes, over ${maxBytes} bytes (the limit)`)
  const chunks: Array<Buffer> = []
  let size = 0
  for await (const chunk of body) {
    size += (chunk as Buffer).byteLength
    if (size > maxBytes) throw refuse(`the answer is over ${maxBytes} bytes (the limit)`)
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks, size).toString("utf8")
}
