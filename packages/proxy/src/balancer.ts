/**
 * Round-robin over an API's healthy targets. Targets are marked unhealthy by active probes
 * (healthCheck) or passively, after consecutive transport failures; see README "Health". A target
 * that just refused a connection is held back for a short backoff (README "Refused connections").
 */
import type { Dispatcher } from 'undici'
import type { TransportClassification } from '@faultline/core'
import type { HealthCheckOptions } from './options.js'

export interface Target {
  /** `http://host:port` */
  readonly origin: string
  /** Path the target's URL adds before the request path, without a trailing slash ('' for none). */
  readonly basePath: string
  /** `host:port`, as logged in upstream_addr and error_target. */
  readonly address: string
  healthy: boolean
  failures: number
  successes: number
  /** When a passively ejected target may be tried again (ms since epoch); 0 when not ejected. */
  retryAt: number
  /** Until when (ms since epoch) the target is not dialled because it refused a connection; 0: no hold. */
  refusedUntil: number
}

export function parseTarget (url: string): Target {
  const u = new URL(url)
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new TypeError(`upstream target must be an http(s) URL, got ${JSON.stringify(url)}`)
  const port = u.port !== '' ? u.port : (u.protocol === 'https:' ? '443' : '80')
  return {
    origin: u.origin,
    basePath: u.pathname === '/' ? '' : u.pathname.replace(/\/$/, ''),
    address: `${u.hostname}:${port}`,
    healthy: true,
    failures: 0,
    successes: 0,
    retryAt: 0,
    refusedUntil: 0
  }
}

export type HealthListener = (target: Target, healthy: boolean, reason: string) => void

/** How long a passively ejected target stays out when no active check can bring it back. */
export const PASSIVE_EJECTION_MS = 10_000

export class Balancer {
  readonly targets: readonly Target[]
  private next = 0
  private readonly unhealthyThreshold: number
  private readonly healthyThreshold: number
  private readonly active: boolean
  private timer: NodeJS.Timeout | undefined
  private probing = false

  /**
   * @param refusedBackoff ms a target that refused a connection is not dialled (0: dial every time).
   */
  constructor (targets: Target[], private readonly health: HealthCheckOptions | undefined, private readonly onChange: HealthListener, private readonly refusedBackoff = 0) {
    this.targets = targets
    this.unhealthyThreshold = health?.unhealthyThreshold ?? 2
    this.healthyThreshold = health?.healthyThreshold ?? 1
    this.active = health !== undefined
  }

  /** `host:port` list of every target, for NHU's error_target. */
  describe (): string {
    return this.targets.map((t) => t.address).join(',')
  }

  /**
   * The next healthy target, round-robin; `undefined` when none is healthy (NHU). A target in its
   * refusal backoff is passed over while another one can be dialled, and returned only when every
   * healthy target is in backoff: the caller answers UCF for it without dialling (see `isHeld`).
   */
  pick (now = Date.now()): Target | undefined {
    const n = this.targets.length
    let held = -1
    for (let i = 0; i < n; i++) {
      const at = (this.next + i) % n
      const t = this.targets[at]
      if (t.healthy || (t.retryAt !== 0 && now >= t.retryAt)) {
        if (this.isHeld(t, now)) {
          if (held === -1) held = at
          continue
        }
        this.next = (at + 1) % n
        return t
      }
    }
    if (held === -1) return undefined
    this.next = (held + 1) % n
    return this.targets[held]
  }

  /** Whether `target` refused a connection less than `refusedBackoff` ms ago. */
  isHeld (target: Target, now = Date.now()): boolean {
    return target.refusedUntil > now
  }

  /** Passive marking: a transport failure on a proxied request. */
  reportFailure (target: Target, failure: Pick<TransportClassification, 'flag' | 'details'>): void {
    const reason = failure.details
    if (failure.flag === 'UCF' && this.refusedBackoff > 0) target.refusedUntil = Date.now() + this.refusedBackoff
    target.failures++
    target.successes = 0
    if (!target.healthy) {
      if (target.retryAt !== 0) target.retryAt = Date.now() + PASSIVE_EJECTION_MS
      return
    }
    if (target.failures < this.unhealthyThreshold) return
    // Never eject the last healthy target on passive evidence alone: trying it beats answering NHU
    // for a target that may be back. Only the active checks may declare every target down.
    if (!this.targets.some((t) => t !== target && t.healthy)) return
    target.healthy = false
    target.retryAt = this.active ? 0 : Date.now() + PASSIVE_EJECTION_MS
    this.onChange(target, false, reason)
  }

  /** Passive marking: the target answered (any status: its health is the breaker's business). */
  reportSuccess (target: Target): void {
    target.failures = 0
    target.refusedUntil = 0
    if (!target.healthy && !this.active) {
      target.healthy = true
      target.retryAt = 0
      this.onChange(target, true, 'request succeeded')
    }
  }

  private probeResult (target: Target, ok: boolean, reason: string): void {
    if (ok) {
      target.failures = 0
      target.refusedUntil = 0
      target.successes++
      if (!target.healthy && target.successes >= this.healthyThreshold) {
        target.healthy = true
        target.retryAt = 0
        this.onChange(target, true, reason)
      }
    } else {
      target.successes = 0
      target.failures++
      if (target.healthy && target.failures >= this.unhealthyThreshold) {
        target.healthy = false
        target.retryAt = 0
        this.onChange(target, false, reason)
      }
    }
  }

  /** Starts active checks through the API's own dispatcher (same TLS settings as traffic). */
  startProbes (dispatcher: Dispatcher): void {
    if (this.health === undefined) return
    const interval = this.health.interval ?? 5000
    const timeout = this.health.timeout ?? 1000
    const path = this.health.path ?? '/health'
    const probe = async (target: Target): Promise<void> => {
      try {
        const res = await dispatcher.request({
          origin: target.origin,
          path: target.basePath + path,
          method: 'GET',
          headersTimeout: timeout,
          bodyTimeout: timeout
        })
        await res.body.dump()
        this.probeResult(target, res.statusCode < 400, `health check answered ${res.statusCode}`)
      } catch (err) {
        const code = (err as { code?: string }).code ?? (err as Error).name
        this.probeResult(target, false, `health check failed: ${code}`)
      }
    }
    const round = (): void => {
      if (this.probing) return
      this.probing = true
      Promise.all(this.targets.map(probe)).finally(() => { this.probing = false })
    }
    round()
    this.timer = setInterval(round, interval)
    this.timer.unref()
  }

  stop (): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
  }
}
