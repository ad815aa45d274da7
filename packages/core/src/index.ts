export { faultlineCorePlugin as default, faultlineCorePlugin, reportFailure, applyClassification, declaresBody } from './plugin.js'
export type { FaultlineCoreOptions, FaultlineCore, RecordSink, FailureReport } from './plugin.js'
export { flags, flagList, getFlag, isFlag } from './flags.js'
export type { FlagDefinition, FlagCategory, FlagCode } from './flags.js'
export { FaultlineError, isFaultlineError, stacklessFaultlineError } from './faultline-error.js'
export type { FaultlineErrorOptions } from './faultline-error.js'
export { FaultlineRecord, recordFields, roundMs } from './record.js'
export { classifyError } from './classify-error.js'
export type { ErrorClassification } from './classify-error.js'
export {
  classifyTransportError,
  formatCertificateSubject,
  formatCertificateExpiry
} from './classify-transport-error.js'
export type { TransportClassification, PeerCertificateSummary } from './classify-transport-error.js'
export { classifyParserError } from './classify-parser-error.js'
export { clientErrorHandler, frameworkErrors } from './client-error-handler.js'
export { buildErrorBody, reasonPhrase } from './error-reply.js'
export type { ErrorReplyBody } from './error-reply.js'
export { resolveRequestId } from './request-id.js'
export { kApiBreaker, kApiTargets, kRouteConfig, kUpstreamStart } from './internal.js'
