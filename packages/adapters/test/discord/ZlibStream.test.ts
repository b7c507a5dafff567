import { assert, describe, it } from "@effect/vitest"
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

  it("garbage is an error, not a hang", () => {
    const decoder = ZlibStream.makeDecoder()
    assert.throws(() => decoder.push(Buffer.from([1, 2, 3, 4, 0, 0, 0xff, 0xff])))
    decoder.close()
    void deflateSync
  })
})
