/**
 * Realistic MESSAGE_CREATE payloads (about 800 bytes each, 850 as a gateway frame, like a plain
 * guild message) for the Discord benchmarks, spread over `channels` channels.
 */
export const messagePayloads = (channels: number): ReadonlyArray<Record<string, unknown>> =>
  Array.from({ length: channels }, (_, i) => ({
    type: 0,
    tts: false,
    timestamp: "2026-01-01T00:00:00.000000+00:00",
    pinned: false,
    nonce: "1234567890123456789",
    mentions: [],
    mention_roles: [],
    mention_everyone: false,
    member: { roles: [], premium_since: null, pending: false, nick: null, mute: false, joined_at: "2025-01-01T00:00:00.000000+00:00", flags: 0, deaf: false, communication_disabled_until: null, avatar: null },
    id: String(1_200_000_000_000_000_000n + BigInt(i)),
    flags: 0,
    embeds: [],
    edited_timestamp: null,
    content: `hello from channel ${i}, this is an ordinary chat message`,
    components: [],
    channel_id: String(1_100_000_000_000_000_000n + BigInt(i)),
    author: { username: `user${i}`, public_flags: 0, id: String(1_000_000_000_000_000_000n + BigInt(i)), global_name: `User ${i}`, discriminator: "0", avatar_decoration_data: null, avatar: "a".repeat(32) },
    attachments: [],
    guild_id: "1300000000000000000"
  }))
