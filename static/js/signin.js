// Sign-in for the staff apps: reuse a stored session whose role fits, else show the form
// and wait for a successful sign-in. Resolves with the user from GET /auth/me.
import { ApiError, api, currentUser, forgetSignIn, signIn, signOut, token } from "./api.js";
import { problem, t } from "./i18n.js";

/** The user of the session this browser keeps, if its role is one of `roles` (not yet
 *  checked with the server: signedIn does that). */
export function storedSession(roles) {
  return token() && roles.includes(currentUser()?.role) ? currentUser() : null;
}

/**
 * @param {object} options
 * @param {HTMLFormElement} options.form with inputs named username and password, and an [role=alert]
 * @param {string[]} options.roles roles this app serves
 */
export async function signedIn({ form, roles }) {
  if (storedSession(roles)) {
    try {
      return await api("/auth/me");
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 401) throw error;
      await signOut().catch(() => {});
    }
  }
  return formSignIn(form, roles);
}

/** Show the form and wait for a sign-in with one of `roles`; the user from GET /auth/me. */
function formSignIn(form, roles) {
  form.hidden = false;
  const alert = form.querySelector("[role=alert]");
  form.elements.username.focus();
  return new Promise((resolve) => {
    form.addEventListener("submit", async function submit(event) {
      event.preventDefault();
      alert.textContent = "";
      try {
        const user = await signIn(form.elements.username.value.trim(), form.elements.password.value);
        if (!roles.includes(user.role)) {
          await signOut();
          alert.textContent = t("auth.wrong_role");
          return;
        }
        form.removeEventListener("submit", submit);
        form.hidden = true;
        resolve(await api("/auth/me"));
      } catch (error) {
        alert.textContent = error instanceof ApiError && error.status === 401 ? t("auth.failed") : problem(error);
      }
    });
  });
}

/** A connect refused, or a live session ended, for one of these needs a new sign-in: retrying
 *  with the same token cannot succeed. */
export const SIGN_IN_ENDED = ["invalid_token", "token_expired", "token_revoked", "user_disabled"];

let again = null;

/** The server no longer takes this app's sign-in (it ran out, was revoked, the account was
 *  disabled): ask for it again above the app, which stays as it is, with whatever was typed;
 *  `kept` says so. Resolves with the user once signed in; every caller meanwhile shares the
 *  one form. Unless `anyone` may carry on, a different person signing in gets the page
 *  afresh: what is on screen is the first one's. */
export function signInAgain({ form, roles, error, kept = t("auth.again.kept"), anyone = false }) {
  again ??= (async () => {
    const before = currentUser();
    forgetSignIn();
    form.classList.add("again");
    form.elements.password.value = "";
    form.elements.username.value = before?.username || "";
    const shown = formSignIn(form, roles);
    form.querySelector("[role=alert]").textContent = `${problem(error)}\n${kept}`;
    if (before) form.elements.password.focus();
    const user = await shown;
    form.classList.remove("again");
    if (!anyone && before && user.id !== before.id) {
      location.reload();
      return new Promise(() => {}); // nothing more happens on this page
    }
    return user;
  })().finally(() => { again = null; });
  return again;
}

/** Keep a staff app signed in around its live connection: when the server ends the session
 *  (or refuses it) for want of a sign-in, ask for one over the app, resume from the last seq
 *  seen, then `onSignedIn`; when the user's rooms change, reload (the app's queue, map and
 *  filters were the old rooms'), after `beforeReload` has kept what the app keeps. Returns
 *  the same sign-in again for the app's own requests that meet a 401: it resolves once
 *  signed in and resumed. */
export function keepSignedIn(live, { form, roles, onSignedIn = () => {}, beforeReload = () => {} }) {
  const again = async (error) => {
    await signInAgain({ form, roles, error });
    live.resume(token());
    await onSignedIn();
  };
  live.addEventListener("refused", (e) => {
    if (SIGN_IN_ENDED.includes(e.detail.code)) again(new ApiError(401, e.detail));
  });
  live.addEventListener("rooms_changed", () => { beforeReload(); location.reload(); });
  return again;
}

/** Keep `value` for `user`'s page after the reload into new rooms (this tab only). */
export function keepForReload(key, user, value) {
  sessionStorage.setItem(key, JSON.stringify({ user, value }));
}

/** What `keepForReload` kept for `user`, once: null when nothing was, or for someone else. */
export function keptOverReload(key, user) {
  const kept = JSON.parse(sessionStorage.getItem(key) || "null");
  sessionStorage.removeItem(key);
  return kept?.user === user ? kept.value : null;
}

/** A sign-out button: revoke the token, forget the live position, reload to the form. */
export function signOutButton(button, storageKey) {
  button.addEventListener("click", async () => {
    await signOut().catch(() => {});
    sessionStorage.removeItem(storageKey);
    location.reload();
  });
}
