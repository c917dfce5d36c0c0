// The console's shell: sign-in, navigation by #/page, and the service's clock and time zone.
import { ApiError, gql } from "./api.js";
import { setTimeZone, timeZone } from "./format.js";
import { refusal, session } from "./session.js";
import { el, errorBox } from "./ui.js";
import * as revenue from "./pages/revenue.js";
import * as collections from "./pages/collections.js";
import * as user from "./pages/user.js";
import * as cohorts from "./pages/cohorts.js";
import * as ledger from "./pages/ledger.js";

const PAGES = { revenue, collections, user, cohorts, ledger };
const $ = (id) => document.getElementById(id);
export const service = { now: null };

function showLogin(message) {
  session.clear();
  $("nav").hidden = true;
  $("who").hidden = true;
  $("page").replaceChildren();
  $("login").hidden = false;
  const box = $("login-error");
  box.hidden = !message;
  box.textContent = message || "";
  $("token").focus();
}

async function start(token) {
  const data = await gql("query ConsoleStart { me clock { now timezone } }", {}, token);
  setTimeZone(data.clock.timezone);
  service.now = data.clock.now;
  return data.me;
}

function route() {
  if (!session.token()) return showLogin();
  const [name = "revenue", ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  const page = PAGES[name] || PAGES.revenue;
  for (const link of document.querySelectorAll("#nav a")) {
    link.toggleAttribute("aria-current", link.getAttribute("href") === `#/${name}`);
    if (link.hasAttribute("aria-current")) link.setAttribute("aria-current", "page");
  }
  const root = el("section", { "data-page": name, "aria-labelledby": "page-title" });
  $("page").replaceChildren(root);
  document.title = `${page.title} · subledger console`;
  page.render(root, rest.map(decodeURIComponent)).catch((error) => {
    if (!error.kind) console.error(error);
    root.append(errorBox(error));
  });
}

async function signedIn() {
  $("login").hidden = true;
  $("nav").hidden = false;
  $("who").hidden = false;
  $("who-text").textContent = `${session.subject()} · ${session.scopes().filter((s) => ["admin", "analyst", "auditor"].includes(s)).join(", ")} · times in ${timeZone()}`;
  route();
}

async function boot() {
  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = $("token").value.trim();
    const why = refusal(token);
    if (why) return showLogin(why);
    try {
      await start(token);
    } catch (error) {
      const message = error instanceof ApiError && error.kind === "unauthenticated"
        ? `The API refused this token: ${error.message}. It may have expired or been signed with another key.`
        : `Could not sign in: ${error.message}`;
      return showLogin(message);
    }
    session.save(token);
    $("token").value = "";
    signedIn();
  });
  $("logout").addEventListener("click", () => showLogin("Signed out."));
  window.addEventListener("hashchange", () => session.token() && route());
  const token = session.token();
  if (!token) return showLogin();
  const why = refusal(token);
  if (why) return showLogin(why);
  try {
    await start(token);
  } catch (error) {
    return showLogin(error.kind === "unauthenticated" ? `Your token is no longer accepted (${error.message}); sign in again.` : error.message);
  }
  signedIn();
}

boot();
