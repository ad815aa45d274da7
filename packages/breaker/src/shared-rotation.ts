/**
 * One bucket-rotation timer for every breaker with the same bucket length. Left alone, opossum
 * gives each breaker an interval of its own to slide its rolling window (plus a second one for
 * 'snapshot' events, which this package turns off): a thousand APIs would mean a thousand timers
 * waking every second. opossum's `rotateBucketController` lets one emitter drive them all.
 */
import { EventEmitter } from 'node:events'

interface Rotation {
  readonly emitter: EventEmitter
  readonly timer: NodeJS.Timeout
  users: number
}

const rotations = new Map<number, Rotation>()

/** The emitter that rotates windows of buckets `bucketMs` long; its timer starts with the first user. */
export function acquireRotation (bucketMs: number): EventEmitter {
  let rotation = rotations.get(bucketMs)
  if (rotation === undefined) {
    const emitter = new EventEmitter()
    emitter.setMaxListeners(0)
    const timer = setInterval(() => emitter.emit('rotate'), bucketMs)
    timer.unref()
    rotation = { emitter, timer, users: 0 }
    rotations.set(bucketMs, rotation)
  }
  rotation.users++
  return rotation.emitter
}

/** Gives the emitter back; the timer stops with its last user. */
export function releaseRotation (bucketMs: number): void {
  const rotation = rotations.get(bucketMs)
  if (rotation === undefined) return
  if (--rotation.users > 0) return
  clearInterval(rotation.timer)
  rotations.delete(bucketMs)
}

/** Rotation timers currently running (one per distinct bucket length in use). */
export function rotationTimerCount (): number {
  return rotations.size
}
