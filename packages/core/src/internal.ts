/** Symbols shared by the core's modules; not part of the public API. */
export const kStart = Symbol('faultline.start')
export const kDone = Symbol('faultline.done')
export const kExposeFlag = Symbol('faultline.exposeFlag')
export const kRouteConfig = Symbol('faultline.routeConfig')
export const kStatusCode = Symbol('faultline.statusCode')
export const kReply = Symbol('faultline.reply')
/** When the upstream was first dialled for this request (performance.now()), set by the proxy. */
export const kUpstreamStart = Symbol('faultline.upstreamStart')
