export { faultlineAccessLogPlugin as default, faultlineAccessLogPlugin } from './plugin.js'
export type { AccessLogOptions, RouteAccessLogConfig } from './options.js'
