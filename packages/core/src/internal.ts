/** Symbols shared by the core's modules; not part of the public API. */
export const kStart = Symbol('faultline.start')
export const kDone = Symbol('faultline.done')
export const kExposeFlag = Symbol('faultline.exposeFlag')
export const kRouteConfig = Symbol('faultline.routeConfig')
export const kStatusCode = Symbol('faultline.statusCode')
export const kReply = Symbol('faultline.reply')
/** When the upstream was first dialled for this request (performance.now()), set by the proxy. */
export const kUpstreamStart = Symbol('faultline.upstreamStart')
/**
 * Route config keys for an API's breaker and balancer views. Metrics and health endpoints look
 * there first: when several APIs share one scope (as in @faultline/gateway), no scope decorator
 * can tell them apart.
 */
export const kApiBreaker = Symbol('faultline.apiBreaker')
export const kApiTargets = Symbol('faultline.apiTargets')
