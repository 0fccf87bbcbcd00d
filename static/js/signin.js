// Sign-in for the staff apps: reuse a stored session whose role fits, else show the form
// and wait for a successful sign-in. Resolves with the user from GET /auth/me.
import { ApiError, api, currentUser, signIn, signOut, token } from "./api.js";
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

/** A sign-out button: revoke the token, forget the live position, reload to the form. */
export function signOutButton(button, storageKey) {
  button.addEventListener("click", async () => {
    await signOut().catch(() => {});
    sessionStorage.removeItem(storageKey);
    location.reload();
  });
}
