// Small helpers the staff apps share: HTML escaping, times on the server's clock, a beep.
import { language } from "./i18n.js";

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

export function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

// The server's clock and this device's differ (a tablet set wrong, either way; a test
// clock): countdowns run on the server's. A list answer says the server's "now", read
// between sending and receiving (`anchorServerTime`); every live event's time after it is a
// lower bound, for a clock that jumped forward since (a test clock).
let offset = 0;

export function anchorServerTime(iso, sent, received) {
  const at = Date.parse(iso);
  if (!Number.isNaN(at)) offset = at - (sent + received) / 2;
}

export function observeServerTime(iso) {
  const at = Date.parse(iso);
  if (!Number.isNaN(at)) offset = Math.max(offset, at - Date.now());
}

export function serverNow() {
  return Date.now() + offset;
}

/** "12:34" left, or "-03:10" overdue; hours when long. */
export function countdown(ms) {
  const sign = ms < 0 ? "-" : "";
  const total = Math.floor(Math.abs(ms) / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h ? `${sign}${h}:${String(m).padStart(2, "0")}:${s}` : `${sign}${String(m).padStart(2, "0")}:${s}`;
}

export function localTime(iso) {
  if (!iso) return "—";
  return new Date(iso).toLocaleString(language(), { month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
}

// Browsers only let audio start after a tap or key press; until then the beep is skipped.
let audio = null;

export function unlockAudio() {
  try {
    audio = audio || new AudioContext();
    if (audio.state === "suspended") audio.resume().catch(() => {});
  } catch {
    audio = null;
  }
}

let lastBeep = 0;

/** A short beep (WebAudio, no file); silent when audio is blocked, at most once a second. */
export function beep() {
  try {
    if (!audio || audio.state !== "running" || performance.now() - lastBeep < 1000) return;
    lastBeep = performance.now();
    const oscillator = audio.createOscillator();
    const gain = audio.createGain();
    oscillator.frequency.value = 880;
    gain.gain.setValueAtTime(0.25, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.35);
    oscillator.connect(gain).connect(audio.destination);
    oscillator.start();
    oscillator.stop(audio.currentTime + 0.35);
  } catch {
    // no sound is better than a broken console
  }
}
