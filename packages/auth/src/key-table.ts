/**
 * The static API keys, stored so that a million of them cost the garbage collector almost
 * nothing: the sha256 digests sit in one Buffer, the hash index and the per-key fields in typed
 * arrays, the consumer ids joined into a few long strings. A million `{ id, digest, ... }` objects
 * made every major GC walk them all (311 MiB of heap, ~450 ms per full GC, measured); this table
 * is a few hundred objects whatever the count (14 MiB of heap + 51 MiB outside it, ~15 ms).
 */
const DIGEST = 32
/** Ids are joined this many to a string: a few long strings instead of one per key, none too long for V8. */
const IDS_PER_CHUNK = 4096
const EMPTY = -1

export class KeyTable {
  /** Number of keys added so far. */
  size = 0
  private readonly digests: Buffer
  /** Open addressing, linear probing: an entry's index, or EMPTY. At most half full. */
  private readonly slots: Int32Array
  private readonly mask: number
  /** NaN: never expires. */
  private readonly expiry: Float64Array
  private readonly revokedFlags: Uint8Array
  /** Only the keys restricted to some APIs have an entry. */
  private readonly apiSets = new Map<number, ReadonlySet<string>>()
  private readonly idChunks: string[] = []
  /** End of each id within its chunk (its start is the previous id's end, or 0 for a chunk's first). */
  private readonly idEnds: Uint32Array
  private pendingIds: string[] = []
  private pendingLength = 0

  constructor (readonly capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 0) throw new RangeError(`KeyTable capacity must be an integer >= 0, got ${capacity}`)
    this.digests = Buffer.alloc(capacity * DIGEST)
    let slotCount = 2
    while (slotCount < capacity * 2) slotCount *= 2
    this.slots = new Int32Array(slotCount).fill(EMPTY)
    this.mask = slotCount - 1
    this.expiry = new Float64Array(capacity)
    this.revokedFlags = new Uint8Array(capacity)
    this.idEnds = new Uint32Array(capacity)
  }

  /**
   * Adds a key by its sha256 digest (32 bytes) and returns its index, or returns
   * `-1 - existing` when that digest is already in the table (the table is left unchanged).
   */
  add (digest: Buffer, id: string, expiresAt: number, apis: ReadonlySet<string> | undefined, revoked: boolean): number {
    if (digest.length !== DIGEST) throw new RangeError(`KeyTable digests are ${DIGEST} bytes, got ${digest.length}`)
    if (this.size === this.capacity) throw new RangeError(`KeyTable is full (${this.capacity} keys)`)
    let slot = this.slotOf(digest)
    for (let found = this.slots[slot]; found !== EMPTY; found = this.slots[slot]) {
      if (this.sameDigest(found, digest)) return -1 - found
      slot = (slot + 1) & this.mask
    }
    const index = this.size++
    this.digests.set(digest, index * DIGEST)
    this.slots[slot] = index
    this.expiry[index] = expiresAt
    this.revokedFlags[index] = revoked ? 1 : 0
    if (apis !== undefined) this.apiSets.set(index, apis)
    this.pushId(index, id)
    return index
  }

  /** The index of the key with this digest, or -1. The caller confirms with a timing-safe comparison against `digest(index)`. */
  lookup (digest: Buffer): number {
    if (digest.length !== DIGEST) return -1
    let slot = this.slotOf(digest)
    for (let found = this.slots[slot]; found !== EMPTY; found = this.slots[slot]) {
      if (this.sameDigest(found, digest)) return found
      slot = (slot + 1) & this.mask
    }
    return -1
  }

  /** The stored digest (a view into the table, not a copy). */
  digest (index: number): Buffer {
    const start = index * DIGEST
    return this.digests.subarray(start, start + DIGEST)
  }

  id (index: number): string {
    const chunk = Math.floor(index / IDS_PER_CHUNK)
    const offset = index - chunk * IDS_PER_CHUNK
    // The last chunk is joined when it is full or the table is: until then its ids wait in a list.
    if (chunk === this.idChunks.length) return this.pendingIds[offset]
    return this.idChunks[chunk].slice(offset === 0 ? 0 : this.idEnds[index - 1], this.idEnds[index])
  }

  /** Epoch ms, or NaN when the key never expires. */
  expiresAt (index: number): number {
    return this.expiry[index]
  }

  revoked (index: number): boolean {
    return this.revokedFlags[index] === 1
  }

  apis (index: number): ReadonlySet<string> | undefined {
    return this.apiSets.get(index)
  }

  // sha256 is uniform: its first four bytes are as good a hash as any.
  private slotOf (digest: Buffer): number {
    return digest.readUInt32LE(0) & this.mask
  }

  private sameDigest (index: number, digest: Buffer): boolean {
    const start = index * DIGEST
    for (let i = 0; i < DIGEST; i++) {
      if (this.digests[start + i] !== digest[i]) return false
    }
    return true
  }

  private pushId (index: number, id: string): void {
    this.pendingLength += id.length
    this.idEnds[index] = this.pendingLength
    this.pendingIds.push(id)
    if (this.pendingIds.length === IDS_PER_CHUNK || this.size === this.capacity) this.sealIds()
  }

  /** Joins the pending ids into one flat string, so the table keeps no reference to the callers' strings. */
  private sealIds (): void {
    this.idChunks.push(this.pendingIds.join(''))
    this.pendingIds = []
    this.pendingLength = 0
  }
}
