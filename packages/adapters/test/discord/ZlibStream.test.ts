import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import { randomBytes } from "node:crypto"
import { constants, createDeflate, deflateSync } from "node:zlib"
import { ZlibStream } from "@fiberbot/adapters/discord"

/** Compresses messages as Discord does: one context, a sync flush after each. */
const compressor = () => {
  const d = createDeflate()
  return (text: string) =>
    new Promise<Buffer>((resolve) => {
      const out: Array<Buffer> = []
      const onData = (c: Buffer) => out.push(c)
      d.on("data", onData)
      d.write(text)
      d.flush(constants.Z_SYNC_FLUSH, () => {
        setImmediate(() => {
          d.off("data", onData)
          resolve(Buffer.concat(out))
        })
      })
    })
}

describe("ZlibStream", () => {
  it("decodes a stream of messages with one context, big and small", async () => {
    const compress = compressor()
    const decoder = ZlibStream.makeDecoder()
    const messages = ["{\"op\":10}", JSON.stringify({ big: "é".repeat(400_000) + Math.random() }), "{\"op\":11}"]
    for (const m of messages) {
      const frame = await compress(m)
      assert.deepStrictEqual([...frame.subarray(-4)], [0, 0, 0xff, 0xff])
      assert.strictEqual(decoder.push(frame), m)
    }
    decoder.close()
  })

  it("buffers a message split over frames until its end marker", async () => {
    const compress = compressor()
    const decoder = ZlibStream.makeDecoder()
    const m = JSON.stringify({ t: "GUILD_CREATE", d: Array.from({ length: 2000 }, (_, i) => i * 7919) })
    const frame = await compress(m)
    const parts = [frame.subarray(0, 10), frame.subarray(10, frame.length - 2), frame.subarray(frame.length - 2)]
    assert.strictEqual(decoder.push(Buffer.from(parts[0]!)), undefined)
    assert.strictEqual(decoder.push(Buffer.from(parts[1]!)), undefined)
    assert.strictEqual(decoder.push(Buffer.from(parts[2]!)), m)
    decoder.close()
  })

  it("decodes every message once, at its last frame, however the stream is cut (property)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.string({ unit: "binary", maxLength: 3000 }), { minLength: 1, maxLength: 6 }),
        // cut points as fractions of each message's compressed length; short pieces (under the
        // marker's 4 bytes) and cuts inside the marker come up often
        fc.array(fc.array(fc.oneof(fc.double({ min: 0, max: 1, noNaN: true }), fc.constantFrom(-1, -2, -3)), { maxLength: 8 }), { minLength: 6, maxLength: 6 }),
        async (texts, cuts) => {
          const compress = compressor()
          const decoder = ZlibStream.makeDecoder()
          try {
            for (let m = 0; m < texts.length; m++) {
              const text = JSON.stringify({ op: 0, d: texts[m] })
              const bytes = await compress(text)
              const at = [...new Set(cuts[m]!.map((c) => (c < 0 ? bytes.length + c : Math.floor(c * bytes.length))))]
                .filter((i) => i > 0 && i < bytes.length)
                .sort((a, b) => a - b)
              const bounds = [0, ...at, bytes.length]
              for (let i = 0; i + 1 < bounds.length; i++) {
                const decoded = decoder.push(Buffer.from(bytes.subarray(bounds[i], bounds[i + 1])))
                if (i + 2 < bounds.length) assert.strictEqual(decoded, undefined)
                else assert.strictEqual(decoded, text)
              }
            }
          } finally {
            decoder.close()
          }
        }
      ),
      { numRuns: 60 }
    )
  })

  // Each frame that did not end a message used to copy everything buffered so far (to look for the
  // marker across frames): quadratic in the frames of a message, minutes for this one fed a byte at
  // a time. The bytes the decoder copies are counted: linear means about the message's size.
  it("a message split into very many frames is decoded with linear copying", async () => {
    const compress = compressor()
    const decoder = ZlibStream.makeDecoder()
    const text = JSON.stringify({ op: 0, d: randomBytes(220_000).toString("base64") })
    const bytes = await compress(text)
    assert.isAbove(bytes.length, 200_000)
    const limit = 2 * (bytes.length + Buffer.byteLength(text))
    let copied = 0
    const concat = Buffer.concat
    Buffer.concat = (list: ReadonlyArray<Uint8Array>, totalLength?: number) => {
      copied += totalLength ?? list.reduce((n, b) => n + b.byteLength, 0)
      // fail at once rather than spend minutes copying
      if (copied > limit) throw new Error(`copied ${copied} bytes for a ${bytes.length}-byte message`)
      return concat(list, totalLength)
    }
    const decoded: Array<string> = []
    try {
      for (let i = 0; i < bytes.length; i++) {
        const out = decoder.push(bytes.subarray(i, i + 1))
        if (out !== undefined) decoded.push(out)
      }
    } finally {
      Buffer.concat = concat
    }
    assert.deepStrictEqual(decoded, [text])
    assert.isAtMost(copied, limit)
    // empty frames add nothing and end nothing
    assert.strictEqual(decoder.push(Buffer.alloc(0)), undefined)
    decoder.close()
  })

  it("garbage is an error, not a hang", () => {
    const decoder = ZlibStream.makeDecoder()
    assert.throws(() => decoder.push(Buffer.from([1, 2, 3, 4, 0, 0, 0xff, 0xff])))
    decoder.close()
    void deflateSync
  })
})
