// The kim client protocol over a browser WebSocket (docs/protocol.md, DESIGN.md §2).
//
// One packet per binary WebSocket message:
//   LogicPkt  C3 11 A3 65 | u32 header length | protobuf Header | u32 body length | body
//   BasicPkt  C3 15 A7 65 | u16 code | u16 body length | body        (1 ping, 2 pong)
// Integers are big-endian. KimConnection sends requests with increasing sequences and
// resolves each with the response of the same sequence; pushes go to onPush. It pings
// every heartbeat interval (the server closes an idle connection) and reports the close
// code and reason once.

import { decode, encode } from "./proto.js";

const LOGIC_MAGIC = [0xc3, 0x11, 0xa3, 0x65];
const BASIC_MAGIC = [0xc3, 0x15, 0xa7, 0x65];
export const Flag = { Request: 0, Response: 1, Push: 2 };
export const BasicCode = { Ping: 1, Pong: 2 };
export const Status = {
  0: "Success",
  100: "NoDestination",
  101: "InvalidPacketBody",
  103: "InvalidCommand",
  105: "Unauthorized",
  300: "SystemException",
  301: "NotImplemented",
  403: "Forbidden",
  404: "SessionNotFound",
  410: "NotFound",
  413: "TooLarge",
  429: "RateLimited",
  430: "QuotaExceeded",
  503: "Unavailable",
};
export const CloseReason = {
  1000: "normal",
  1001: "gateway going away",
  1002: "protocol error",
  1003: "unsupported data",
  1009: "packet too big",
  1013: "try again later",
  4001: "unauthorized",
  4002: "kicked out",
  4003: "slow consumer",
  4004: "login timeout",
  4005: "idle timeout",
  4006: "quota exceeded",
};
const REQUEST_TIMEOUT_MS = 10000;
const MAX_SEQUENCE = 0xffffffff;

export class PacketError extends Error {}

export function encodeLogic(header, body = new Uint8Array()) {
  const head = encode("Header", header);
  const out = new Uint8Array(4 + 4 + head.length + 4 + body.length);
  const view = new DataView(out.buffer);
  out.set(LOGIC_MAGIC, 0);
  view.setUint32(4, head.length);
  out.set(head, 8);
  view.setUint32(8 + head.length, body.length);
  out.set(body, 12 + head.length);
  return out;
}

export function encodeBasic(code, body = new Uint8Array()) {
  const out = new Uint8Array(8 + body.length);
  const view = new DataView(out.buffer);
  out.set(BASIC_MAGIC, 0);
  view.setUint16(4, code);
  view.setUint16(6, body.length);
  out.set(body, 8);
  return out;
}

function magicIs(bytes, magic) {
  return magic.every((b, i) => bytes[i] === b);
}

// Returns {kind: "logic", header, body} or {kind: "basic", code, body}.
export function decodePacket(bytes) {
  if (bytes.length < 8) throw new PacketError("packet shorter than its head");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (magicIs(bytes, BASIC_MAGIC)) {
    const length = view.getUint16(6);
    if (8 + length !== bytes.length) throw new PacketError("BasicPkt length mismatch");
    return { kind: "basic", code: view.getUint16(4), body: bytes.subarray(8) };
  }
  if (!magicIs(bytes, LOGIC_MAGIC)) throw new PacketError("bad magic");
  const headLength = view.getUint32(4);
  if (8 + headLength + 4 > bytes.length) throw new PacketError("truncated LogicPkt header");
  const header = decode("Header", bytes.subarray(8, 8 + headLength));
  const bodyLength = view.getUint32(8 + headLength);
  const start = 12 + headLength;
  if (start + bodyLength !== bytes.length) throw new PacketError("LogicPkt length mismatch");
  return { kind: "logic", header, body: bytes.subarray(start) };
}

export class RequestError extends Error {
  constructor(command, status, message) {
    super(`${command}: ${Status[status] || status}${message ? ` (${message})` : ""}`);
    this.status = status;
  }
}

export class KimConnection {
  // onPush(header, body), onClose({code, reason}) are called by the connection.
  constructor(url, { onPush = () => {}, onClose = () => {}, heartbeatSeconds = 55 } = {}) {
    this.url = url;
    this.onPush = onPush;
    this.onClose = onClose;
    this.heartbeatMs = heartbeatSeconds * 1000;
    this.sequence = 0;
    this.pending = new Map();
    this.opened = false;
    this.closed = false;
    this.lastPong = 0;
  }

  open() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      ws.binaryType = "arraybuffer";
      this.ws = ws;
      ws.onopen = () => {
        this.opened = true;
        this.pinger = setInterval(() => this.ping(), this.heartbeatMs);
        resolve();
      };
      ws.onmessage = (event) => this.receive(new Uint8Array(event.data));
      ws.onclose = (event) => {
        // A connection that never opened only fails open(); onClose is for sessions.
        if (!this.opened) {
          this.closed = true;
          reject(new Error(`cannot connect to ${this.url} (close ${event.code})`));
        } else if (!this.closed) {
          this.finish(event.code, event.reason);
        }
      };
      // A failed connection is also reported by onclose, which settles the promise.
      ws.onerror = () => {};
    });
  }

  ping() {
    this.sendBytes(encodeBasic(BasicCode.Ping));
  }

  sendBytes(bytes) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(bytes);
  }

  receive(bytes) {
    let packet;
    try {
      packet = decodePacket(bytes);
    } catch (err) {
      console.warn("dropped a malformed packet:", err.message);
      return;
    }
    if (packet.kind === "basic") {
      if (packet.code === BasicCode.Ping) this.sendBytes(encodeBasic(BasicCode.Pong));
      else if (packet.code === BasicCode.Pong) this.lastPong = Date.now();
      return;
    }
    const { header, body } = packet;
    if (header.flag === Flag.Response && this.pending.has(header.sequence)) {
      const waiter = this.pending.get(header.sequence);
      this.pending.delete(header.sequence);
      clearTimeout(waiter.timer);
      waiter.resolve({ header, body });
    } else if (header.flag === Flag.Push) {
      this.onPush(header, body);
    }
  }

  // Sends a request; resolves with the decoded response body (responseType) or null.
  // Rejects with RequestError for a non-zero status, or on timeout / close.
  async request(command, type, message, { dest = "", responseType = null } = {}) {
    this.sequence = this.sequence >= MAX_SEQUENCE ? 1 : this.sequence + 1;
    const sequence = this.sequence;
    const body = type ? encode(type, message) : new Uint8Array();
    const answer = new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(sequence);
        reject(new Error(`${command}: no response within ${REQUEST_TIMEOUT_MS} ms`));
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(sequence, { resolve, reject, timer });
    });
    this.sendBytes(encodeLogic({ command, sequence, flag: Flag.Request, dest }, body));
    const { header, body: raw } = await answer;
    if (header.status !== 0) {
      let reason = "";
      try {
        reason = raw.length ? decode("ErrorResp", raw).message : "";
      } catch {
        reason = "";
      }
      throw new RequestError(command, header.status, reason);
    }
    return responseType ? decode(responseType, raw) : null;
  }

  close(code = 1000, reason = "") {
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(code, reason);
  }

  finish(code, reason) {
    this.closed = true;
    clearInterval(this.pinger);
    for (const waiter of this.pending.values()) {
      clearTimeout(waiter.timer);
      waiter.reject(new Error(`connection closed (${code})`));
    }
    this.pending.clear();
    this.onClose({ code, reason: reason || CloseReason[code] || "" });
  }
}
