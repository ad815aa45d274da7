export { loadConfig } from './config/load-config.js'
export { validateConfig } from './config/validate-config.js'
export { ConfigError } from './config/config-error.js'
export type { ConfigProblem } from './config/config-error.js'
export { configSchema, serverDefaults, accessLogDefaults, httpMethods, tlsVersions } from './config/schema.js'
export type {
  GatewayConfig,
  GatewayConfigInput,
  ServerConfig,
  ServerTlsConfig,
  AccessLogConfig,
  ApiConfig,
  ApiAccessLogConfig,
  UpstreamConfig,
  UpstreamTlsConfig,
  HealthCheckConfig,
  MetricsConfig,
  HttpMethod,
  TlsVersion
} from './config/schema.js'
export { buildGateway, registerApi } from './build-gateway.js'
export type { BuildGatewayOptions } from './build-gateway.js'
export { serve } from './serve.js'
export { tuneGatewayRuntime, gatewayV8Flags, primeNextTick } from './runtime.js'
export type { ServeOptions, RunningGateway } from './serve.js'
export { main, formatFlagTable } from './cli.js'
export type { CliIo } from './cli.js'
