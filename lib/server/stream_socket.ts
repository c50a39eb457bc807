/**
 * The socket contract between the routes and the server adapter: what a
 * media stream handler needs from its socket ({@link StreamSocket}), what
 * the socket hands back ({@link SocketListener}), and the upgrade the
 * adapter implements ({@link UpgradeStream}; `./deno_websocket.ts` for
 * `Deno.serve`). The routes and the handlers know no socket library.
 *
 * @module
 */

/** What a stream handler needs from its socket. */
export interface StreamSocket {
  send(text: string): void;
  close(code: number, reason: string): void;
  /** Bytes sent but not yet taken by the other side (grows when it stops reading). */
  unsentBytes(): number;
}

/** What hears a socket's messages and its close. */
export interface SocketListener {
  onMessage(data: string | ArrayBuffer | Blob | Uint8Array): void;
  /**
   * A text message as the bytes received, for sockets that frame messages
   * themselves (valid only during the call): true when it was read, false
   * to have it decoded and given to {@link onMessage} instead.
   */
  readText?(bytes: Uint8Array): boolean;
  /** A message of `bytes` over the socket's limit was refused unread (sockets that check at the header). */
  onOversized?(bytes: number): void;
  onClose(): void;
}

/**
 * Upgrades `request` to a socket and hands its messages to the listener
 * `make` returns; `onClosed` runs after that listener heard the close.
 */
export type UpgradeStream = (
  request: Request,
  make: (socket: StreamSocket) => SocketListener,
  onClosed?: () => void,
) => Response;
