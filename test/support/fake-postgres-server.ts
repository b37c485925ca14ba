import { AddressInfo, createServer, Server, Socket } from 'node:net';

/** What a client sent to {@link FakePostgresServer}. */
export interface FakePostgresLogin {
  /** Startup parameters (user, database, application_name...). */
  parameters: Record<string, string>;
  /** The password of the PasswordMessage, when the client sent one. */
  password?: string;
}

/**
 * A PostgreSQL server that is not one: it speaks just enough of the frontend/backend protocol v3
 * (https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP) to answer a client's
 * startup with AuthenticationCleartextPassword, records the password the client then sends in clear, and ends the
 * session with a FATAL "password authentication failed". An attacker's server would do exactly this to harvest
 * whatever secret a client was told to send. SSLRequest and GSSENCRequest are answered "N" (no encryption).
 * Used by the tests of the secret-reference allow-list: a real server cannot tell us what it received.
 */
export class FakePostgresServer {
  /** Every login attempt, in order. */
  readonly logins: FakePostgresLogin[] = [];
  /** TCP connections accepted (a refused request must not even connect). */
  connections = 0;
  private readonly server: Server;

  private constructor() {
    this.server = createServer((socket) => this.serve(socket));
  }

  /** Starts a server on a free port of 127.0.0.1. */
  static async start(): Promise<FakePostgresServer> {
    const fake = new FakePostgresServer();
    await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', resolve));
    return fake;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** The passwords received, in order. */
  get passwords(): string[] {
    return this.logins.flatMap((l) => (l.password === undefined ? [] : [l.password]));
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private serve(socket: Socket): void {
    this.connections++;
    let buffer = Buffer.alloc(0);
    let login: FakePostgresLogin | undefined;
    socket.on('error', () => undefined);
    socket.on('data', (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        if (!login) {
          // untyped startup packets: Int32 length (itself included), Int32 code, payload
          if (buffer.length < 8) return;
          const length = buffer.readInt32BE(0);
          if (buffer.length < length) return;
          const code = buffer.readInt32BE(4);
          const payload = buffer.subarray(8, length);
          buffer = buffer.subarray(length);
          if (code === 80877103 || code === 80877104) {
            socket.write('N'); // SSLRequest, GSSENCRequest: not supported
            continue;
          }
          const parts = payload.toString('utf8').split('\u0000');
          const parameters: Record<string, string> = {};
          for (let i = 0; i + 1 < parts.length && parts[i]; i += 2) parameters[parts[i]] = parts[i + 1];
          login = { parameters };
          this.logins.push(login);
          socket.write(authenticationCleartextPassword());
          continue;
        }
        // typed messages: Byte1 type, Int32 length (itself included, not the type byte), payload
        if (buffer.length < 5) return;
        const length = buffer.readInt32BE(1);
        if (buffer.length < 1 + length) return;
        const type = String.fromCharCode(buffer[0]);
        const payload = buffer.subarray(5, 1 + length);
        buffer = buffer.subarray(1 + length);
        if (type === 'p') {
          login.password = payload.toString('utf8').replace(/\u0000$/, '');
          socket.end(fatal('28P01', `password authentication failed for user "${login.parameters.user ?? ''}"`));
          return;
        }
        socket.end();
        return;
      }
    });
  }
}

function authenticationCleartextPassword(): Buffer {
  const message = Buffer.alloc(9);
  message.write('R', 0);
  message.writeInt32BE(8, 1);
  message.writeInt32BE(3, 5); // AuthenticationCleartextPassword
  return message;
}

function fatal(code: string, text: string): Buffer {
  const fields = Buffer.from(`SFATAL\u0000VFATAL\u0000C${code}\u0000M${text}\u0000\u0000`, 'utf8');
  const header = Buffer.alloc(5);
  header.write('E', 0);
  header.writeInt32BE(4 + fields.length, 1);
  return Buffer.concat([header, fields]);
}
