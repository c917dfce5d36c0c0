// How the console writes money, times and shares: ₩9,900; times in SUBLEDGER_TIMEZONE.
let zone = "Asia/Seoul";

export function setTimeZone(name) {
  zone = name;
}
export function timeZone() {
  return zone;
}

/** Whole Korean won: ₩9,900, -₩1,000. */
export function won(amount) {
  const n = Number(amount);
  return `${n < 0 ? "-" : ""}₩${Math.abs(n).toLocaleString("en-US")}`;
}

export function count(n) {
  return Number(n).toLocaleString("en-US");
}

/** A share as a percentage with one decimal: 0.25 → 25.0% */
export function percent(share) {
  return `${(Number(share) * 100).toFixed(1)}%`;
}

const stamp = () =>
  new Intl.DateTimeFormat("sv-SE", {
    timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
    hourCycle: "h23",
  });

/** An ISO instant written in the service's time zone: 2026-01-05 09:00 */
export function dateTime(iso) {
  if (!iso) return "—";
  return stamp().format(new Date(iso));
}

/** The wall-clock parts of an instant in the service's zone. */
export function wallParts(date) {
  const parts = {};
  for (const p of stamp().formatToParts(date)) parts[p.type] = p.value;
  return { year: +parts.year, month: +parts.month, day: +parts.day, hour: +parts.hour, minute: +parts.minute };
}

/** "YYYY-MM" of an instant, in the service's zone. */
export function monthOf(iso) {
  const p = wallParts(new Date(iso));
  return `${p.year}-${String(p.month).padStart(2, "0")}`;
}

/** The instant (ISO, UTC) of a wall-clock "YYYY-MM-DDTHH:MM" in the service's zone. */
export function instantOfWall(local) {
  const [date, time = "00:00"] = local.split("T");
  const [y, mo, d] = date.split("-").map(Number);
  const [h, mi] = time.split(":").map(Number);
  const wall = Date.UTC(y, mo - 1, d, h, mi);
  let guess = wall;
  for (let i = 0; i < 2; i++) {
    const p = wallParts(new Date(guess));
    const shown = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute);
    guess += wall - shown;
  }
  return new Date(guess).toISOString();
}

/** Months from "YYYY-MM" to "YYYY-MM", inclusive. */
export function monthsBetween(from, to) {
  const out = [];
  let [y, m] = from.split("-").map(Number);
  const [ty, tm] = to.split("-").map(Number);
  while (y < ty || (y === ty && m <= tm)) {
    out.push(`${y}-${String(m).padStart(2, "0")}`);
    m += 1;
    if (m > 12) { m = 1; y += 1; }
  }
  return out;
}

export function addMonths(month, delta) {
  let [y, m] = month.split("-").map(Number);
  const index = y * 12 + (m - 1) + delta;
  return `${Math.floor(index / 12)}-${String((index % 12) + 1).padStart(2, "0")}`;
}

export function lastDay(month) {
  const [y, m] = month.split("-").map(Number);
  return `${month}-${String(new Date(Date.UTC(y, m, 0)).getUTCDate()).padStart(2, "0")}`;
}
