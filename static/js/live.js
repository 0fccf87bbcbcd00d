// The live connection shared by every web app: keeps `since`, reconnects with back-off,
// drops duplicates by seq, and hands events to the page. The server replays what was
// missed while offline; if too much was missed it says "resync" and the page reloads
// its data over REST.
import { io } from "/static/vendor/socket.io-4.8.4/socket.io.esm.min.js";
import { t } from "./i18n.js";
import { SIGN_IN_ENDED } from "./signin.js";

export class LiveConnection extends EventTarget {
  /**
   * @param {object} options
   * @param {string} [options.token] bearer token of a signed-in user
   * @param {string} [options.trackingToken] a reporter's tracking token
   * @param {string} options.storageKey where `since` is kept across page loads
   */
  constructor({ token, trackingToken, storageKey }) {
    super();
    this.storageKey = storageKey;
    this.token = token;
    // A page that never connected starts from "now" (null) and loads its state over REST;
    // a reconnect, or a reload of a page that had connected, resumes from the last seq seen.
    const stored = sessionStorage.getItem(storageKey);
    this.since = stored === null ? null : Number(stored);
    // As last told to the page: online, offline or signed_out; "connecting" until the first
    // answer, so a first connection that never comes up (a proxy that drops websockets, a
    // server restarting) is told to the page as offline too.
    this.state = "connecting";
    this.signedOut = false; // the server ended or refused this sign-in: waiting for a new one
    this.socket = io({
      transports: ["websocket"],
      reconnectionDelay: 500,
      reconnectionDelayMax: 8000,
      randomizationFactor: 0.3,
      // A function, so every reconnect sends the newest seq seen.
      auth: (send) => send({ token: this.token, tracking_token: trackingToken, since: this.since }),
    });
    // While the device says it is offline, retrying only fails (and logs errors): wait for it
    // to come back, then reconnect at once and get the replay.
    this.onOffline = () => { this.socket.disconnect(); this.#status(false); };
    this.onOnline = () => { if (!this.closed) this.socket.connect(); };
    window.addEventListener("offline", this.onOffline);
    window.addEventListener("online", this.onOnline);
    // A first connection cut before its handshake (a proxy that drops websockets) gives no
    // error at all, and the client quietly tries again: after 5 s the page is told.
    this.firstTry = setTimeout(() => { if (this.state === "connecting") this.#status(false); }, 5000);
    this.socket.on("connect", () => this.#status(true));
    this.socket.on("disconnect", () => this.#status(false));
    this.socket.on("connect_error", (error) => {
      const code = error?.data?.code;
      if (SIGN_IN_ENDED.includes(code)) this.signedOut = true;
      if (code === "invalid_since") {
        // A stored seq the server cannot read (not ours to have written): start from now,
        // and the page reloads its state over REST as after a resync.
        this.since = null;
        sessionStorage.removeItem(this.storageKey);
        this.dispatchEvent(new CustomEvent("resync", { detail: { seq: null } }));
        this.socket.connect(); // a refused connect is not tried again by the client itself
        return;
      }
      this.#status(false);
      if (code) {
        this.dispatchEvent(new CustomEvent("refused", { detail: { code, message: error.message } }));
        if ([...SIGN_IN_ENDED, "unknown_tracking_token"].includes(code)) {
          this.socket.disconnect(); // retrying with the same credentials cannot succeed
        }
      }
    });
    // The server ends a session whose sign-in ended (revoked, ran out, account disabled) as
    // it would refuse its connect; and one whose rooms changed (other grids, scope, crew),
    // after which what the page shows may no longer be the user's to see.
    this.socket.on("signed_out", (info) => {
      this.signedOut = true; // before the disconnect that follows: the banner says why
      this.dispatchEvent(new CustomEvent("refused", { detail: info }));
    });
    this.socket.on("rooms_changed", (info) => this.dispatchEvent(new CustomEvent("rooms_changed", { detail: info })));
    this.socket.on("incident_event", (event) => this.#receive(event));
    this.socket.on("crew", (crew) => this.dispatchEvent(new CustomEvent("crew", { detail: crew })));
    this.socket.on("replayed", (info) => {
      this.#remember(info.until);
      this.dispatchEvent(new CustomEvent("replayed", { detail: info }));
    });
    this.socket.on("resync", (info) => {
      // From the server's own last seq, even below ours: a `since` beyond it (a database
      // restored behind an open tab) would drop every later event as already seen.
      this.#remember(info.seq, { reset: true });
      this.dispatchEvent(new CustomEvent("resync", { detail: info }));
    });
  }

  #receive(event) {
    if (this.since !== null && event.seq <= this.since) return; // already seen
    this.#remember(event.seq);
    this.dispatchEvent(new CustomEvent("event", { detail: event }));
  }

  #remember(seq, { reset = false } = {}) {
    this.since = reset || this.since === null ? seq : Math.max(this.since, seq);
    sessionStorage.setItem(this.storageKey, String(this.since));
  }

  get online() {
    return this.state === "online";
  }

  #status(online) {
    const state = online ? "online" : this.signedOut ? "signed_out" : "offline";
    if (state === this.state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent("status", { detail: { online, state } }));
  }

  /** Connect again with a new sign-in's token, from the last seq seen: nothing is missed. */
  resume(token) {
    this.token = token;
    this.signedOut = false;
    if (this.closed) return;
    // Still connected (a tap met the ended sign-in first): that socket was let in with the old
    // token, and the server would soon end it and have the user sign in once more.
    if (this.socket.connected) this.socket.disconnect();
    this.socket.connect();
  }

  close() {
    this.closed = true;
    clearTimeout(this.firstTry);
    window.removeEventListener("offline", this.onOffline);
    window.removeEventListener("online", this.onOnline);
    this.socket.disconnect();
  }
}

/** The banner of a page's live connection: hidden while online; offline, it says whether the
 * connection is being re-established or waits for the user to sign in again. */
export function showLiveStatus(banner, { state }) {
  banner.textContent = t(state === "signed_out" ? "live.signed_out" : "live.offline");
  banner.dataset.state = state;
  banner.hidden = state === "online";
}
