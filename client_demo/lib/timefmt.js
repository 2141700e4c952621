// Times and counts in the live-blog house style, matching server/timefmt.py:
// "12:43 a.m. ET, July 27, 2023" in the blog's time zone, "1 Post" / "9 Posts".

// US newsrooms label their zones without the daylight-saving letter: "ET" all year.
const US_LABELS = {
  "America/New_York": "ET",
  "America/Chicago": "CT",
  "America/Denver": "MT",
  "America/Phoenix": "MT",
  "America/Los_Angeles": "PT",
  "America/Anchorage": "AKT",
  "Pacific/Honolulu": "HT",
};

const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
  "October", "November", "December"];

const formats = new Map();
// Zone labels read from stamps the server rendered ("zone offset" -> "JST"), so the widget
// spells a zone exactly like the page around it even where ICU and tzdata disagree.
const learned = new Map();

function format(locale, options) {
  const key = locale + JSON.stringify(options);
  if (!formats.has(key)) formats.set(key, new Intl.DateTimeFormat(locale, options));
  return formats.get(key);
}

function part(date, zone, locale, options, type) {
  return format(locale, { timeZone: zone, ...options }).formatToParts(date).find((p) => p.type === type)?.value ?? "";
}

/** The zone if the browser knows it, else "UTC" (as the server does). */
export function knownZone(zone) {
  try {
    format("en-US", { timeZone: zone });
    return zone;
  } catch {
    return "UTC";
  }
}

function offsetName(date, zone) {
  return part(date, zone, "en-US", { timeZoneName: "longOffset" }, "timeZoneName");
}

/** The short zone label shown after the clock time: "ET", "BST", "GMT+4". */
export function zoneLabel(date, zone) {
  if (US_LABELS[zone]) return US_LABELS[zone];
  const seen = learned.get(`${zone} ${offsetName(date, zone)}`);
  if (seen) return seen;
  const label = part(date, zone, "en-US", { timeZoneName: "short" }, "timeZoneName");
  if (!label.startsWith("GMT") || !zone.startsWith("Europe/")) return label;
  // tzdata keeps Europe's abbreviations (BST, CEST); ICU spells them only in British English.
  return part(date, zone, "en-GB", { timeZoneName: "short" }, "timeZoneName");
}

/** Format an RFC 3339 instant in *zone* as "12:43 a.m. ET, July 27, 2023". */
export function formatStamp(iso, zone) {
  const date = new Date(iso);
  zone = knownZone(zone);
  const options = { year: "numeric", month: "numeric", day: "numeric", hour: "numeric", minute: "2-digit",
    hourCycle: "h23" };
  const parts = Object.fromEntries(format("en-US", { timeZone: zone, ...options }).formatToParts(date)
    .map((p) => [p.type, p.value]));
  const hour = Number(parts.hour);
  const clock = `${hour % 12 || 12}:${parts.minute} ${hour < 12 ? "a.m." : "p.m."}`;
  return `${clock} ${zoneLabel(date, zone)}, ${MONTHS[parts.month - 1]} ${Number(parts.day)}, ${parts.year}`;
}

/** Remember the zone labels of the server-rendered stamps under *root*. */
export function learnZoneLabels(root, zone) {
  zone = knownZone(zone);
  for (const time of root.querySelectorAll("time[datetime]")) {
    const label = /[ap]\.m\. (.+?), /.exec(time.textContent)?.[1];
    if (label) learned.set(`${zone} ${offsetName(new Date(time.dateTime), zone)}`, label);
  }
}

/** "1 Post", "9 Posts", "0 Posts". */
export function countLabel(count) {
  return count === 1 ? "1 Post" : `${count} Posts`;
}

/**
 * How long ago *iso* was, in whole units rounded down: "just now" (under a minute, or a server
 * clock a little ahead of this one), "5 min ago", "2 h ago", "3 days ago".
 */
export function agoLabel(iso, now = Date.now()) {
  const minutes = Math.floor((now - Date.parse(iso)) / 60_000);
  if (!(minutes >= 1)) return "just now"; // also NaN: an unreadable stamp
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours} h ago`;
  const days = Math.floor(hours / 24);
  return days === 1 ? "1 day ago" : `${days} days ago`;
}
