// The browser chat client: the flows of `cirno chat` (cirno/chat.py) over the kim
// protocol. Sign-in mints a user token through the control plane (admin path) unless
// one is pasted, asks /v1/route where to connect, logs in, pulls what arrived while
// offline (chat.offline.index pages, then chat.offline.content), acks the newest
// message, and then shows pushes: 1:1 and group messages, group events and a kickout.

import { api, adminToken, mintUserToken, setAdminToken } from "./api.js";
import { clear, clock, formValues, h, list } from "./dom.js";
import { CloseReason, KimConnection } from "./kim.js";
import { decode } from "./proto.js";

const CLIENT_VERSION = "console-chat/1";
const CONTENT_BATCH = 100;
const ACK_DELAY_MS = 1000;
const TEXT = 1;
const SENT = 1;

const $ = (id) => document.getElementById(id);
const state = {
  conn: null,
  me: "",
  session: null, // {token, device, route} of the signed-in account, for reconnects
  leaving: false,
  failures: 0,
  retryTimer: null,
  seen: new Set(),
  ackId: 0n,
  ackTimer: null,
  groups: new Set(),
};
// A handle for debugging from the browser's console (and for the browser tests).
window.cirnoChat = state;

function say(kind, text, data = {}) {
  const line = h("li", { class: kind, dataset: { kind, ...data } }, text);
  $("log").append(line);
  line.scrollIntoView({ block: "end" });
}

function showMessage(m) {
  const id = String(m.messageId);
  if (state.seen.has(id)) return;
  state.seen.add(id);
  const stamp = clock(Number(m.sendTime) / 1000);
  let text;
  if (m.group) text = `[${stamp}] #${m.group} ${m.sender}: ${m.body}`;
  else if (m.sender === state.me) text = `[${stamp}] you → ${m.to || "?"}: ${m.body}`;
  else text = `[${stamp}] ${m.sender} → ${m.to === state.me ? "you" : m.to}: ${m.body}`;
  const data = { id, sender: m.sender, to: m.to || "", group: m.group || "", body: m.body };
  say("message", text, m.offline ? { ...data, offline: "1" } : data);
  if (m.group) rememberGroup(m.group);
}

function rememberGroup(groupId) {
  if (state.groups.has(groupId)) return;
  state.groups.add(groupId);
  $("groups").append(h("option", { value: groupId }));
}

// The newest received id is acked a moment later: one ack covers everything before it.
function queueAck(messageId) {
  if (messageId > state.ackId) state.ackId = messageId;
  if (state.ackTimer) return;
  state.ackTimer = setTimeout(async () => {
    state.ackTimer = null;
    const conn = state.conn;
    if (!conn || conn.closed) return;
    const messageId = state.ackId;
    try {
      await conn.request("chat.talk.ack", "MessageAckReq", { messageId });
      document.body.dataset.acked = String(messageId);
    } catch (err) {
      say("error", `! ack failed: ${err.message}`);
    }
  }, ACK_DELAY_MS);
}

function onPush(header, body) {
  try {
    const command = header.command;
    if (command === "chat.user.talk" || command === "chat.group.talk") {
      const push = decode("MessagePush", body);
      const mine = push.sender === state.me;
      showMessage({ ...push, to: push.group ? "" : mine ? header.dest : state.me });
      queueAck(push.messageId);
    } else if (command === "login.signin") {
      const kicked = decode("KickoutNotify", body);
      say("event", `* kicked out: this account logged in on the same device elsewhere (${kicked.channelId})`, { event: "kickout" });
    } else if (command === "chat.group.create") {
      const created = decode("GroupCreateNotify", body);
      rememberGroup(created.group_id);
      say("event", `* group #${created.group_id} created: ${created.members.join(", ")}`, { event: "group-created", group: created.group_id });
    } else if (command === "chat.group.join" || command === "chat.group.quit") {
      const joined = command === "chat.group.join";
      const notice = decode(joined ? "GroupJoinNotify" : "GroupQuitNotify", body);
      say("event", `* group #${notice.group_id} ${joined ? "joined" : "quit"}: ${notice.account}`, { event: joined ? "group-joined" : "group-quit", group: notice.group_id });
    }
  } catch (err) {
    say("error", `! malformed ${header.command} push: ${err.message}`);
  }
}

// Closes after which reconnecting cannot help: a refused login, a kickout, a quota.
const FINAL_CLOSES = new Set([4001, 4002, 4006]);

function onClose({ code, reason }) {
  const kicked = code === 4002;
  const retry = !state.leaving && !FINAL_CLOSES.has(code) && state.session !== null;
  const delay = retry ? backoff(state.session.route.reconnect, state.failures++) : 0;
  const tail = retry ? `; reconnecting in ${(delay / 1000).toFixed(1)} s` : "";
  const data = { event: kicked ? "kicked" : "closed", code: String(code), reconnect: retry ? "yes" : "no" };
  say(kicked ? "event" : "status", `* disconnected (${code} ${reason || CloseReason[code] || ""})${tail}`, data);
  setConnected(false);
  if (retry) state.retryTimer = setTimeout(reconnect, delay);
}

// Exponential back-off with jitter, as the route answer says (initial_ms, max_ms, ...).
function backoff({ initial_ms, max_ms, multiplier, jitter }, attempt) {
  const base = Math.min(max_ms, initial_ms * multiplier ** attempt);
  return base * (1 - jitter + 2 * jitter * Math.random());
}

async function reconnect() {
  try {
    await connect(state.session);
    say("status", "* reconnected", { event: "reconnected" });
  } catch (err) {
    say("error", `! reconnect failed: ${err.message}`);
    if (state.conn && !state.conn.closed) state.conn.close();
    else if (state.session) {
      state.retryTimer = setTimeout(reconnect, backoff(state.session.route.reconnect, state.failures++));
    }
  }
}

// Walks the inbox after the server's read index for this device, oldest first.
async function offlineSync(conn) {
  let cursor = 0n;
  let count = 0;
  for (;;) {
    const page = await conn.request("chat.offline.index", "MessageIndexReq", { message_id: cursor }, { responseType: "MessageIndexResp" });
    const entries = page.indexes;
    for (let i = 0; i < entries.length; i += CONTENT_BATCH) {
      const batch = entries.slice(i, i + CONTENT_BATCH);
      const ids = batch.map((entry) => entry.message_id);
      const answer = await conn.request("chat.offline.content", "MessageContentReq", { message_ids: ids }, { responseType: "MessageContentResp" });
      const contents = new Map(answer.contents.map((c) => [String(c.messageId), c]));
      for (const entry of batch) {
        const content = contents.get(String(entry.message_id));
        if (!content) continue;
        const sent = entry.direction === SENT;
        const other = entry.accountB;
        showMessage({
          messageId: entry.message_id,
          sendTime: entry.send_time,
          body: content.body,
          group: entry.group,
          sender: entry.group ? other : sent ? state.me : other,
          to: entry.group ? "" : sent ? other : state.me,
          offline: true,
        });
        count += 1;
      }
    }
    if (entries.length) {
      cursor = entries[entries.length - 1].message_id;
      queueAck(cursor);
    }
    if (!page.has_more || !entries.length) return count;
  }
}

// Route, connect, log in and sync; the session (token, device) is kept for reconnects.
async function connect(session) {
  const query = new URLSearchParams({ token: session.token, platform: "web", version: CLIENT_VERSION });
  const route = await api("GET", `/v1/route?${query}`, { token: null });
  session.route = route;
  const gateway = route.gateways.find((g) => g.ws_url);
  if (!gateway) throw new Error("no gateway with a WebSocket address");
  say("status", `* connecting to ${gateway.ws_url} (gateway ${gateway.id}, zone ${gateway.zone})`);
  const conn = new KimConnection(gateway.ws_url, { onPush, onClose, heartbeatSeconds: route.heartbeat_interval_s });
  state.conn = conn;
  await conn.open();
  const login = await conn.request("login.signin", "LoginReq", { token: session.token, device: session.device, client_version: CLIENT_VERSION }, { responseType: "LoginResp" });
  state.me = login.account;
  state.failures = 0;
  setConnected(true);
  say("status", `* signed in as ${login.account} (channel ${login.channelId})`, { event: "signed-in", account: login.account });
  const synced = await offlineSync(conn);
  say("status", `* offline sync: ${synced} message(s)`, { event: "synced", count: String(synced) });
}

async function signIn(event) {
  event.preventDefault();
  const values = formValues(event.target);
  if (values.admin) setAdminToken(values.admin);
  clearTimeout(state.retryTimer);
  state.leaving = false;
  try {
    const token = values.token || (await mintUserToken(values.tenant, values.account));
    state.session = { token, device: values.device || "web", route: null };
    await connect(state.session);
  } catch (err) {
    say("error", `! ${err.message}`);
    state.session = null;
    if (state.conn) state.conn.close();
  }
}

async function send(event) {
  event.preventDefault();
  const { to, text } = formValues(event.target);
  if (!to || !text) return;
  const group = to.startsWith("#");
  const dest = to.replace(/^[@#]/, "");
  const command = group ? "chat.group.talk" : "chat.user.talk";
  const clientMsgId = crypto.randomUUID();
  try {
    const resp = await state.conn.request(command, "MessageReq", { type: TEXT, body: text, client_msg_id: clientMsgId }, { dest, responseType: "MessageResp" });
    showMessage({ messageId: resp.messageId, sendTime: resp.sendTime, body: text, sender: state.me, to: group ? "" : dest, group: group ? dest : "" });
    event.target.elements.text.value = "";
  } catch (err) {
    say("error", `! ${err.message}`);
  }
}

async function groupCommand(event) {
  event.preventDefault();
  const action = event.submitter ? event.submitter.value : "create";
  const { name, members, group } = formValues(event.target);
  const groupId = group.replace(/^#/, "");
  const conn = state.conn;
  try {
    if (action === "create") {
      const made = await conn.request("chat.group.create", "GroupCreateReq", { name, owner: state.me, members: list(members) }, { responseType: "GroupCreateResp" });
      rememberGroup(made.group_id);
      event.target.elements.group.value = `#${made.group_id}`;
      say("status", `* created group ${name}: #${made.group_id}`, { event: "created", group: made.group_id });
    } else if (action === "join" || action === "leave") {
      const command = action === "join" ? "chat.group.join" : "chat.group.quit";
      await conn.request(command, action === "join" ? "GroupJoinReq" : "GroupQuitReq", { account: state.me, group_id: groupId });
      say("status", `* ${action === "join" ? "joined" : "left"} #${groupId}`);
    } else {
      const page = await conn.request("chat.group.members", "GroupGetReq", { group_id: groupId }, { responseType: "GroupMembersResp" });
      say("status", `* #${groupId}: ${page.members.map((m) => m.account).join(", ")}`, { event: "members", group: groupId });
    }
  } catch (err) {
    say("error", `! ${err.message}`);
  }
}

function setConnected(connected) {
  document.body.dataset.connected = connected ? "yes" : "no";
  $("signin").querySelector("button").disabled = connected;
  $("signout").disabled = !connected;
  for (const form of [$("send"), $("group")]) {
    for (const element of form.elements) element.disabled = !connected;
  }
  $("who").textContent = connected ? state.me : "not connected";
}

function init() {
  const params = new URLSearchParams(location.search);
  const form = $("signin");
  form.elements.admin.value = adminToken() || "";
  for (const name of ["tenant", "account", "device"]) {
    if (params.get(name)) form.elements[name].value = params.get(name);
  }
  form.addEventListener("submit", signIn);
  $("send").addEventListener("submit", send);
  $("group").addEventListener("submit", groupCommand);
  $("signout").addEventListener("click", async () => {
    state.leaving = true;
    clearTimeout(state.retryTimer);
    try {
      await state.conn.request("login.signout", null, null);
    } catch (err) {
      say("error", `! ${err.message}`);
    }
    state.conn.close();
  });
  clear($("log"));
  setConnected(false);
}

init();
