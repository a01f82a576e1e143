// A small protobuf (proto3) encoder and decoder for the messages of
// data_plane/wire/protocol.proto that the browser chat client uses.
//
// A schema maps field numbers to [name, type, repeated?]. Types: "string", "bool",
// "int32", "uint32", "enum", "int64" (a BigInt: message ids exceed 2^53), or the name
// of another message. Encoding writes fields in number order and skips proto3 defaults;
// repeated numeric fields are packed (proto3's default). Decoding accepts packed and
// unpacked repeated numbers, skips unknown fields (forward compatibility: the server
// may add fields), and throws on truncated or malformed input.

export const SCHEMAS = {
  Meta: { 1: ["key", "string"], 2: ["value", "string"], 3: ["type", "enum"] },
  Header: {
    1: ["command", "string"],
    2: ["channelId", "string"],
    3: ["sequence", "uint32"],
    4: ["flag", "enum"],
    5: ["status", "enum"],
    6: ["dest", "string"],
    7: ["meta", "Meta", true],
  },
  LoginReq: {
    1: ["token", "string"],
    2: ["isp", "string"],
    3: ["zone", "string"],
    4: ["tags", "string", true],
    5: ["device", "string"],
    6: ["client_version", "string"],
  },
  LoginResp: { 1: ["channelId", "string"], 2: ["account", "string"] },
  KickoutNotify: { 1: ["channelId", "string"] },
  MessageReq: {
    1: ["type", "int32"],
    2: ["body", "string"],
    3: ["extra", "string"],
    4: ["client_msg_id", "string"],
  },
  MessageResp: {
    1: ["messageId", "int64"],
    2: ["sendTime", "int64"],
    3: ["seq", "int64"],
    4: ["inbox_seq", "int64"],
  },
  MessagePush: {
    1: ["messageId", "int64"],
    2: ["type", "int32"],
    3: ["body", "string"],
    4: ["extra", "string"],
    5: ["sender", "string"],
    6: ["sendTime", "int64"],
    7: ["client_msg_id", "string"],
    8: ["seq", "int64"],
    9: ["group", "string"],
    10: ["inbox_seq", "int64"],
  },
  ErrorResp: { 1: ["message", "string"] },
  MessageAckReq: { 1: ["messageId", "int64"] },
  GroupCreateReq: {
    1: ["name", "string"],
    2: ["avatar", "string"],
    3: ["introduction", "string"],
    4: ["owner", "string"],
    5: ["members", "string", true],
  },
  GroupCreateResp: { 1: ["group_id", "string"] },
  GroupCreateNotify: { 1: ["group_id", "string"], 2: ["members", "string", true] },
  GroupJoinReq: { 1: ["account", "string"], 2: ["group_id", "string"] },
  GroupQuitReq: { 1: ["account", "string"], 2: ["group_id", "string"] },
  GroupGetReq: { 1: ["group_id", "string"], 2: ["offset", "int32"], 3: ["limit", "int32"] },
  Member: {
    1: ["account", "string"],
    2: ["alias", "string"],
    3: ["avatar", "string"],
    4: ["join_time", "int64"],
  },
  GroupJoinNotify: { 1: ["group_id", "string"], 2: ["account", "string"] },
  GroupQuitNotify: { 1: ["group_id", "string"], 2: ["account", "string"] },
  GroupMembersResp: {
    1: ["members", "Member", true],
    2: ["has_more", "bool"],
    3: ["member_count", "int32"],
  },
  MessageIndexReq: { 1: ["message_id", "int64"] },
  MessageIndexResp: { 1: ["indexes", "MessageIndex", true], 2: ["has_more", "bool"] },
  MessageIndex: {
    1: ["message_id", "int64"],
    2: ["direction", "int32"],
    3: ["send_time", "int64"],
    4: ["accountB", "string"],
    5: ["group", "string"],
    6: ["seq", "int64"],
  },
  MessageContentReq: { 1: ["message_ids", "int64", true] },
  MessageContent: {
    1: ["messageId", "int64"],
    2: ["type", "int32"],
    3: ["body", "string"],
    4: ["extra", "string"],
  },
  MessageContentResp: { 1: ["contents", "MessageContent", true] },
};

const VARINT_TYPES = new Set(["bool", "int32", "uint32", "enum", "int64"]);
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder("utf-8", { fatal: true });

export class DecodeError extends Error {}

function defaultOf(type, repeated) {
  if (repeated) return [];
  if (type === "string") return "";
  if (type === "bool") return false;
  if (type === "int64") return 0n;
  if (VARINT_TYPES.has(type)) return 0;
  return null; // an absent sub-message
}

// ---- encoding -------------------------------------------------------------------------

class Writer {
  constructor() {
    this.bytes = [];
  }
  varint(value) {
    let v = BigInt.asUintN(64, BigInt(value));
    while (v > 0x7fn) {
      this.bytes.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.bytes.push(Number(v));
  }
  tag(number, wireType) {
    this.varint((number << 3) | wireType);
  }
  lengthDelimited(number, payload) {
    this.tag(number, 2);
    this.varint(payload.length);
    for (const b of payload) this.bytes.push(b);
  }
  result() {
    return Uint8Array.from(this.bytes);
  }
}

function scalarValue(type, value) {
  if (type === "bool") return value ? 1 : 0;
  if (type === "int64") return BigInt(value);
  return value;
}

function isDefault(type, value) {
  if (type === "string") return value === "";
  if (type === "int64") return BigInt(value) === 0n;
  if (VARINT_TYPES.has(type)) return !value;
  return value === null || value === undefined;
}

export function encode(name, message) {
  const schema = SCHEMAS[name];
  if (!schema) throw new Error(`unknown message ${name}`);
  const out = new Writer();
  const numbers = Object.keys(schema).map(Number).sort((a, b) => a - b);
  for (const number of numbers) {
    const [field, type, repeated] = schema[number];
    const value = message[field];
    if (value === undefined || value === null) continue;
    if (repeated) {
      if (!value.length) continue;
      if (VARINT_TYPES.has(type)) {
        const packed = new Writer();
        for (const item of value) packed.varint(scalarValue(type, item));
        out.lengthDelimited(number, packed.result());
      } else {
        for (const item of value) writeOne(out, number, type, item);
      }
    } else if (!isDefault(type, value)) {
      writeOne(out, number, type, value);
    }
  }
  return out.result();
}

function writeOne(out, number, type, value) {
  if (type === "string") out.lengthDelimited(number, utf8.encode(value));
  else if (VARINT_TYPES.has(type)) {
    out.tag(number, 0);
    out.varint(scalarValue(type, value));
  } else out.lengthDelimited(number, encode(type, value));
}

// ---- decoding -------------------------------------------------------------------------

class Reader {
  constructor(bytes) {
    this.bytes = bytes;
    this.pos = 0;
  }
  done() {
    return this.pos >= this.bytes.length;
  }
  varint() {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.bytes.length) throw new DecodeError("truncated varint");
      const b = this.bytes[this.pos++];
      result |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return BigInt.asUintN(64, result);
      shift += 7n;
    }
    throw new DecodeError("varint longer than 10 bytes");
  }
  take(length) {
    if (length > this.bytes.length - this.pos) throw new DecodeError("truncated field");
    const slice = this.bytes.subarray(this.pos, this.pos + length);
    this.pos += length;
    return slice;
  }
  skip(wireType) {
    if (wireType === 0) this.varint();
    else if (wireType === 1) this.take(8);
    else if (wireType === 2) this.take(Number(this.varint()));
    else if (wireType === 5) this.take(4);
    else throw new DecodeError(`unsupported wire type ${wireType}`);
  }
}

function fromVarint(type, raw) {
  if (type === "int64") return BigInt.asIntN(64, raw);
  if (type === "bool") return raw !== 0n;
  if (type === "uint32") return Number(BigInt.asUintN(32, raw));
  return Number(BigInt.asIntN(32, raw)); // int32 and enums
}

export function decode(name, bytes) {
  const schema = SCHEMAS[name];
  if (!schema) throw new Error(`unknown message ${name}`);
  const message = {};
  for (const [field, type, repeated] of Object.values(schema)) {
    message[field] = defaultOf(type, repeated);
  }
  const reader = new Reader(bytes);
  while (!reader.done()) {
    const key = Number(reader.varint());
    const number = key >>> 3;
    const wireType = key & 7;
    const entry = schema[number];
    if (!entry) {
      reader.skip(wireType);
      continue;
    }
    const [field, type, repeated] = entry;
    let values;
    if (VARINT_TYPES.has(type) && wireType === 2) {
      const packed = new Reader(reader.take(Number(reader.varint())));
      values = [];
      while (!packed.done()) values.push(fromVarint(type, packed.varint()));
    } else if (VARINT_TYPES.has(type) && wireType === 0) {
      values = [fromVarint(type, reader.varint())];
    } else if (wireType === 2 && !VARINT_TYPES.has(type)) {
      const payload = reader.take(Number(reader.varint()));
      try {
        values = [type === "string" ? fromUtf8.decode(payload) : decode(type, payload)];
      } catch (err) {
        if (err instanceof DecodeError) throw err;
        throw new DecodeError(`field ${field} of ${name}: ${err.message}`);
      }
    } else {
      throw new DecodeError(`field ${field} of ${name} has wire type ${wireType}`);
    }
    if (repeated) message[field].push(...values);
    else message[field] = values[values.length - 1];
  }
  return message;
}
