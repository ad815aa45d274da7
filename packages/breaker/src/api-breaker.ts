/**
 * One API's breaker: admission before the request runs, judgement once its record is finished.
 *
 * opossum keeps the state machine (closed, open, half-open), the rolling window and the reset
 * timer. It is fed only conclusive outcomes, and only when the request ended: a request that
 * taught nothing about the upstream (client error, auth, CDC, ...) is never passed to opossum,
 * which would count it as a success (errorFilter) or a failure, and would close or re-open a
 * half-open breaker on it. Admission (open, half-open with its trial in flight, capacity) is
 * decided here from opossum's state, so the trial slot can be given back when a trial is
 * inconclusive.
 */
import CircuitBreaker from 'opossum'
import type { FastifyBaseLogger } from 'fastify'
import type { FaultlineRecord } from '@faultline/core'
import { FAILURE, INCONCLUSIVE, SUCCESS, judgeOutcome, type Outcome } from './judge-outcome.js'
import type { BreakerSettings } from './options.js'
import { acquireRotation, releaseRotation } from './shared-rotation.js'

export type CircuitBreakerState = 'closed' | 'open' | 'half_open'

export const ADMITTED = 0
export const REJECTED_OPEN = 1
export const REJECTED_HALF_OPEN = 2
export const REJECTED_CAPACITY = 3
export type Admission = typeof ADMITTED | typeof REJECTED_OPEN | typeof REJECTED_HALF_OPEN | typeof REJECTED_CAPACITY

export const kBreaker = Symbol('faultline.breaker')
export const kGeneration = Symbol('faultline.breaker.generation')

/** A record admitted by a breaker carries it, and the period (generation) it was admitted in. */
export type AdmittedRecord = FaultlineRecord & { [kBreaker]?: ApiBreaker, [kGeneration]?: number }

/** Window totals of conclusive outcomes (what the failure rate is computed from). */
export interface BreakerStats {
  /** Judged requests in the window. */
  requests: number
  failures: number
  successes: number
}

/** What the breaker knows about its API, resolved when it is needed (after the routes exist). */
export interface BreakerSubject {
  apiName: () => string
}

const RECENT = 10
// Thrown by the action for a failure: one object, nobody reads its stack.
const upstreamFailure = new Error('upstream failure')

function noop (): void {}

/** The action opossum runs: the outcome is already known when it is fired. */
function judged (outcome: Outcome): true {
  if (outcome === FAILURE) throw upstreamFailure
  return true
}

export class ApiBreaker {
  readonly settings: BreakerSettings
  /** Admitted requests not finished yet. */
  inFlight = 0
  private readonly breaker: CircuitBreaker<[Outcome], true>
  private readonly log: FastifyBaseLogger
  private readonly subject: BreakerSubject
  /** Bumped on every state change: an outcome only counts in the period it was admitted in. */
  private generation = 0
  private trialInFlight = false
  private nextTrialAt = 0
  private state: CircuitBreakerState = 'closed'
  /** Flags of the last failures (a ring), for the log line that says why the breaker opened. */
  private readonly recent: string[] = []
  private recentNext = 0
  /** The last judged request, for the reason of a re-open or a close. */
  private lastFlag: string | undefined
  private lastDetails: string | undefined
  private lastTarget: string | undefined
  private lastStatus: number | undefined
  private shutDown = false
  private readonly targetSet = new Set<string>()
  /** The address settle last found in targetSet: a request to it needs no lookup in the Set. */
  private settledTarget: string | undefined
  /** Comma-separated `host:port` of the API's upstream targets (`error_target` of CBO and UOF). */
  targets: string | undefined = undefined

  constructor (settings: BreakerSettings, log: FastifyBaseLogger, subject: BreakerSubject) {
    this.settings = settings
    this.log = log
    this.subject = subject
    this.breaker = new CircuitBreaker<[Outcome], true>(judged, {
      // No action timeout: the proxy enforces connect and response timeouts, and no timer is
      // armed per request.
      timeout: false,
      errorThresholdPercentage: settings.errorThresholdPercentage,
      volumeThreshold: settings.volumeThreshold,
      resetTimeout: settings.resetTimeout,
      rollingCountTimeout: settings.rollingCountTimeout,
      rollingCountBuckets: settings.rollingCountBuckets,
      rotateBucketController: acquireRotation(settings.bucketMs),
      rollingPercentilesEnabled: false,
      enableSnapshots: false
    })
    this.breaker.on('open', () => this.onOpen())
    this.breaker.on('halfOpen', () => this.onHalfOpen())
    this.breaker.on('close', () => this.onClose())
  }

  get currentState (): CircuitBreakerState {
    return this.state
  }

  /** Whole seconds until the next trial (at least 1). */
  retryAfter (): number {
    if (this.state !== 'open') return 1
    return Math.max(1, Math.ceil((this.nextTrialAt - Date.now()) / 1000))
  }

  /** Decides whether the request may go to the upstream; an admitted record is tracked until it finishes. */
  admit (record: AdmittedRecord): Admission {
    const state = this.state
    if (state === 'open') return REJECTED_OPEN
    if (state === 'half_open' && this.trialInFlight) return REJECTED_HALF_OPEN
    if (this.inFlight >= this.settings.capacity) return REJECTED_CAPACITY
    if (state === 'half_open') this.trialInFlight = true
    this.inFlight++
    record[kBreaker] = this
    record[kGeneration] = this.generation
    return ADMITTED
  }

  /** Adds a `host:port` to the targets the breaker protects (configured, or seen in a record). */
  addTarget (address: string): void {
    if (this.targetSet.has(address)) return
    this.targetSet.add(address)
    this.targets = [...this.targetSet].join(',')
  }

  /** Called once with the finished record of every admitted request. */
  settle (record: AdmittedRecord): void {
    this.inFlight--
    record[kBreaker] = undefined
    const address = record.upstream_addr
    if (address !== undefined && address !== this.settledTarget) {
      // With traffic over 1,000 APIs, the Set's table was a cache miss on most requests (bench/callgrind.mjs).
      this.addTarget(address)
      this.settledTarget = address
    }
    if (this.shutDown || record[kGeneration] !== this.generation) return
    const outcome = judgeOutcome(record)
    if (this.state === 'half_open') {
      // Only one request is admitted at a time in half-open: this is the trial.
      if (outcome === INCONCLUSIVE) {
        // The trial taught nothing (the client left, a client error, ...): stay half-open and let
        // the next request be the trial.
        this.trialInFlight = false
        this.log.debug({ api_name: this.subject.apiName(), circuit_breaker: this.name, response_flag: record.response_flag }, 'faultline: circuit breaker trial inconclusive, the next request is the trial')
        return
      }
      this.fire(outcome, record)
      return
    }
    if (this.state === 'closed' && outcome !== INCONCLUSIVE) this.fire(outcome, record)
  }

  stats (): BreakerStats {
    const s = this.breaker.stats
    return { requests: s.fires, failures: s.failures, successes: s.successes }
  }

  get name (): string {
    return this.settings.name ?? this.subject.apiName()
  }

  shutdown (): void {
    if (this.shutDown) return
    this.shutDown = true
    this.breaker.shutdown()
    releaseRotation(this.settings.bucketMs)
  }

  private fire (outcome: Outcome, record: FaultlineRecord): void {
    this.lastFlag = record.response_flag
    this.lastDetails = record.response_code_details
    this.lastTarget = record.upstream_addr ?? record.error_target
    this.lastStatus = record.upstream_status
    if (outcome === FAILURE) {
      this.recent[this.recentNext] = record.response_flag as string
      this.recentNext = (this.recentNext + 1) % RECENT
    }
    if (outcome === SUCCESS && this.state === 'closed' && this.breaker.closed) {
      // All a success changes in a closed breaker is two counters of its current bucket: they are
      // counted here, as opossum's own 'fire' and 'success' listeners count them, without its
      // promise, semaphore and events for each request (about 2 µs of a loaded gateway's CPU, and
      // more with 1,000 APIs, each breaker's state cold by the time its API's next request comes).
      const status = this.breaker.status
      status.increment('fires')
      // Latency 0: what opossum measures for an action whose outcome is already known.
      status.increment('successes', 0)
      return
    }
    // A failure is judged synchronously (and may open the breaker now); a trial's success closes
    // it on the next microtask (opossum resolves through a promise).
    this.breaker.fire(outcome).catch(noop)
  }

  private changeState (state: CircuitBreakerState): CircuitBreakerState {
    const previous = this.state
    this.state = state
    this.generation++
    this.trialInFlight = false
    return previous
  }

  private lastFailureText (): string {
    let text = this.lastFlag ?? 'unknown'
    if (this.lastDetails !== undefined) text += ` ${this.lastDetails}`
    if (this.lastTarget !== undefined) text += ` at ${this.lastTarget}`
    return text
  }

  private onOpen (): void {
    const previous = this.changeState('open')
    this.nextTrialAt = Date.now() + this.settings.resetTimeout
    const base = {
      api_name: this.subject.apiName(),
      circuit_breaker: this.name,
      circuit_breaker_state: 'open',
      error_target: this.targets,
      retry_in_ms: this.settings.resetTimeout
    }
    if (previous === 'half_open') {
      this.log.warn({ ...base, reason: `half-open trial failed: ${this.lastFailureText()}`, last_flag: this.lastFlag }, 'faultline: circuit breaker re-opened')
      return
    }
    const s = this.breaker.stats
    const rate = s.fires === 0 ? 0 : Math.round((s.failures / s.fires) * 1000) / 10
    const lastFlags: Record<string, number> = {}
    for (const flag of this.recent) lastFlags[flag] = (lastFlags[flag] ?? 0) + 1
    this.log.warn({
      ...base,
      reason: `${rate}% of ${s.fires} upstream requests failed within ${this.settings.rollingCountTimeout} ms (threshold ${this.settings.errorThresholdPercentage}%), last: ${this.lastFailureText()}`,
      failure_rate: rate,
      failures: s.failures,
      requests: s.fires,
      last_flags: lastFlags
    }, 'faultline: circuit breaker opened')
  }

  private onHalfOpen (): void {
    this.changeState('half_open')
    this.log.info({
      api_name: this.subject.apiName(),
      circuit_breaker: this.name,
      circuit_breaker_state: 'half_open',
      reason: `open for ${this.settings.resetTimeout} ms: the next request is the trial`
    }, 'faultline: circuit breaker half-open')
  }

  private onClose (): void {
    this.changeState('closed')
    // The trial proved the upstream back: failures from before the outage must not re-open the
    // breaker on the first new one (opossum keeps its window across a close; Hystrix resets it).
    for (let i = 0; i < this.settings.rollingCountBuckets; i++) this.breaker.status.rotateBucket()
    this.recent.length = 0
    this.recentNext = 0
    const answered = this.lastStatus === undefined ? '' : ` (${this.lastStatus}${this.lastTarget === undefined ? '' : ` from ${this.lastTarget}`})`
    this.log.info({
      api_name: this.subject.apiName(),
      circuit_breaker: this.name,
      circuit_breaker_state: 'closed',
      reason: `half-open trial succeeded: the upstream answered${answered}`
    }, 'faultline: circuit breaker closed')
  }
}
