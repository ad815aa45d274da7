// Ways to end a connection badly: TCP reset, early FIN, raw non-HTTP bytes.
import { Socket } from 'node:net'
import { TLSSocket } from 'node:tls'

/** Aborts the connection with a TCP RST (SO_LINGER 0), so the peer sees ECONNRESET. */
export function resetConnection (socket: Socket): void {
  const tcp = underlyingTcpSocket(socket)
  try {
    tcp.resetAndDestroy()
  } catch {
    tcp.destroy() // no TCP handle any more (already closing): a plain close is all that is left
  }
  if (tcp !== socket) socket.destroy()
}

/** Closes the connection gracefully (FIN, no RST) once pending writes are flushed. */
export function closeConnection (socket: Socket): void {
  socket.end(() => socket.destroy())
}

/** Writes `bytes` straight on the socket, bypassing HTTP framing, then closes gracefully. */
export function writeRawAndClose (socket: Socket, bytes: string): void {
  socket.end(bytes, () => socket.destroy())
}

/**
 * resetAndDestroy() only works on a TCP handle. A server-side TLSSocket wraps the
 * accepted TCP socket, which Node keeps in the (undocumented) `_parent` property.
 */
function underlyingTcpSocket (socket: Socket): Socket {
  if (!(socket instanceof TLSSocket)) return socket
  const parent: unknown = (socket as TLSSocket & { _parent?: unknown })._parent
  return parent instanceof Socket ? parent : socket
}
