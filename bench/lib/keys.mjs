/** The API keys of the benchmark: the gateway and the load generator derive the same ones. */
export function apiKey (i) {
  return `bench-key-${String(i).padStart(8, '0')}`
}
