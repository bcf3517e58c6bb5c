// The viewer's behaviour on top of server-rendered pages: times in the
// viewer's time zone, the filter form, "load more", live rows, and on an
// event's page, checking its proof in this browser (verify.js). Every page
// works without it, less conveniently; nothing here is trusted to the
// server's word.
import { verifyEvent, verifyWitnesses } from "./verify.js";

document.documentElement.classList.add("js");

const pad = (n, w = 2) => String(n).padStart(w, "0");

// localText formats d in the viewer's time zone, like 2026-03-01 14:03:05.
function localText(d) {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// offsetName names the viewer's current offset from UTC: UTC+01:00.
function offsetName() {
  const off = -new Date().getTimezoneOffset();
  const a = Math.abs(off);
  return `UTC${off < 0 ? "-" : "+"}${pad(Math.floor(a / 60))}:${pad(a % 60)}`;
}

// zone names the viewer's time zone: Europe/Paris, or its offset.
const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || offsetName();

// localizeTimes shows every <time datetime> under root in local time, with
// UTC on hover (a time of class "both" shows UTC beside it, to the
// nanosecond as stored); and the chart's time labels.
function localizeTimes(root) {
  for (const t of root.querySelectorAll("time[datetime]")) {
    const iso = t.getAttribute("datetime");
    const d = new Date(iso);
    if (isNaN(d)) continue;
    t.title = `${iso} (UTC); shown in ${zone}`;
    if (t.classList.contains("both")) {
      // The fraction of a second is the same in every zone.
      const frac = (iso.match(/\.\d+/) || [""])[0];
      t.textContent = `${localText(d)}${frac} ${zone}`;
      const utc = document.createElement("span");
      utc.className = "utc";
      utc.textContent = ` (${iso.replace("T", " ").replace("Z", "")} UTC)`;
      t.after(utc);
      continue;
    }
    // A short time drops the year and seconds: 03-01 14:03.
    t.textContent = t.classList.contains("short") ? localText(d).slice(5, 16) : localText(d);
  }
  // The events table's time column names the zone its times are in.
  for (const tz of root.querySelectorAll("#time-head .tz")) tz.textContent = `(${zone})`;
  for (const t of root.querySelectorAll("text[data-time]")) {
    const d = new Date(t.dataset.time);
    if (isNaN(d)) continue;
    t.textContent = t.textContent.includes(":") ? `${pad(d.getHours())}:${pad(d.getMinutes())}`
      : d.toLocaleDateString(undefined, { month: "short", day: "numeric" });
  }
}

// banner shows a message at the top of the page, with an optional link.
function banner(text, link) {
  const b = document.getElementById("banner");
  if (!b) return;
  b.replaceChildren(text);
  if (link) {
    const a = document.createElement("a");
    a.href = link.href;
    a.textContent = link.text;
    b.append(" ", a);
  }
  b.hidden = false;
}

function signInAgain() {
  const next = location.pathname + location.search;
  banner("Your session ended (it expired or was signed out, or its key was revoked).", { href: "/signin?next=" + encodeURIComponent(next), text: "Sign in again" });
}

// explain turns a failed fetch response into a banner.
async function explain(resp) {
  if (resp.status === 401) return signInAgain();
  let msg = `The server answered ${resp.status}.`;
  try {
    const body = await resp.json();
    if (body.error && body.error.message) msg = `The server answered ${resp.status}: ${body.error.message}.`;
  } catch { /* not JSON */ }
  banner(msg);
}

const serverDown = () => banner("The server did not answer. Check that trail serve is running, then try again.");

// Filters: the custom time fields show for a custom range; times in the
// URL are UTC, the fields show local time; empty filters stay out of the URL.
function setUpFilters() {
  const form = document.getElementById("filters");
  if (!form) return;
  const range = form.elements.range;
  const sync = () => form.classList.toggle("show-custom", range.value === "custom");
  range.addEventListener("change", sync);
  sync();
  autoSubmit(form);
  for (const name of ["since", "until"]) {
    const input = form.elements[name];
    const d = input.dataset.utc ? new Date(input.dataset.utc) : null;
    if (d && !isNaN(d)) input.value = localText(d).replace(" ", "T");
  }
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const params = new URLSearchParams();
    for (const [name, value] of new FormData(form)) {
      if (value === "") continue;
      if (name === "since" || name === "until") {
        if (range.value !== "custom") continue;
        const d = new Date(value); // a datetime-local value is local time
        if (!isNaN(d)) params.set(name, d.toISOString());
        continue;
      }
      params.set(name, value);
    }
    const qs = params.toString();
    location.assign("/" + (qs ? "?" + qs : ""));
  });
}

// autoSubmit applies the "show Trail's own reads" switch of form as soon
// as it is flipped (a browser without script has a button for it).
function autoSubmit(form) {
  const box = form?.querySelector("#show-trail");
  box?.addEventListener("change", () => form.requestSubmit());
}

function rowsBody() {
  return document.getElementById("rows");
}

function countShown() {
  const count = document.getElementById("count");
  const body = rowsBody();
  if (!count || !body) return;
  const n = body.rows.length;
  const more = document.getElementById("more");
  count.textContent = `${n.toLocaleString()}${more ? "+" : ""} event${n === 1 ? "" : "s"} shown, newest first`;
}

// Load more: fetch the next page's rows and append them.
function setUpMore() {
  const more = document.getElementById("more");
  if (!more) return;
  more.addEventListener("click", async (ev) => {
    ev.preventDefault();
    const url = more.dataset.rows;
    if (!url || more.getAttribute("aria-busy") === "true") return;
    more.setAttribute("aria-busy", "true");
    try {
      const resp = await fetch(url, { credentials: "same-origin" });
      if (!resp.ok) return explain(resp);
      const html = await resp.text();
      const tmp = document.createElement("tbody");
      tmp.innerHTML = html;
      localizeTimes(tmp);
      const body = rowsBody();
      const have = new Set([...body.rows].map((r) => r.dataset.seq));
      for (const row of [...tmp.rows]) if (!have.has(row.dataset.seq)) body.append(row);
      const next = resp.headers.get("Trail-Next-Rows");
      if (next) more.dataset.rows = next;
      else more.parentElement.remove();
      countShown();
    } catch {
      serverDown();
    } finally {
      more.removeAttribute("aria-busy");
    }
  });
}

// Live: stream new matching rows in at the top while the box is ticked.
function setUpLive() {
  const box = document.getElementById("live");
  if (!box) return;
  let source = null;
  box.addEventListener("change", () => {
    if (!box.checked) {
      source?.close();
      source = null;
      return;
    }
    const url = box.dataset.url + (box.dataset.url.includes("?") ? "&" : "?") + "from=" + box.dataset.from;
    source = new EventSource(url);
    source.addEventListener("row", (ev) => {
      const tmp = document.createElement("tbody");
      tmp.innerHTML = ev.data;
      localizeTimes(tmp);
      const body = rowsBody();
      const row = tmp.rows[0];
      if (!row || body.querySelector(`tr[data-seq="${row.dataset.seq}"]`)) return;
      row.classList.add("new");
      body.prepend(row);
      box.dataset.from = String(Number(row.dataset.seq) + 1);
      document.getElementById("events").hidden = false;
      document.getElementById("empty")?.remove();
      countShown();
    });
    source.addEventListener("open", () => document.getElementById("banner").hidden = true);
    source.addEventListener("error", async () => {
      if (source.readyState !== EventSource.CLOSED) return; // reconnecting
      box.checked = false;
      try {
        const resp = await fetch("/rows?limit=1", { credentials: "same-origin" });
        if (!resp.ok) return explain(resp);
        banner("The live stream ended. Tick Live to resume.");
      } catch {
        serverDown();
      }
    });
  });
}

// Verification of one event, in this browser: the proof leads from the
// event's own bytes to a checkpoint signed by the log's key. The key is
// pinned in this browser the first time it is seen for the log, so a
// server that changes keys is caught too. With a witness policy, the
// checkpoint's cosignatures must meet its quorum too, or the event is shown
// as not witnessed, never as verified; the policy is pinned like the key.
async function setUpVerify() {
  const box = document.getElementById("verify");
  if (!box) return;
  const status = document.getElementById("verify-status");
  const details = document.getElementById("verify-details");
  const d = box.dataset;
  const fail = (reason) => {
    status.className = "status fail";
    status.textContent = "✗ Not verified: " + reason;
    box.classList.add("failed");
  };
  let proof;
  try {
    proof = JSON.parse(d.proof);
  } catch {
    return fail("the page's proof is not valid JSON.");
  }
  const pinKey = `trail.verifier-key:${location.host}:${d.log}`;
  let pinned = null;
  try { pinned = localStorage.getItem(pinKey); } catch { /* storage off */ }
  if (pinned && pinned !== d.verifierKey) {
    return fail(`the log's verifier key changed since this browser first saw it (pinned ${pinned}, now ${d.verifierKey}). Do not trust this log until its operator explains why.`);
  }
  let res;
  try {
    res = await verifyEvent({ event: d.event, proof, checkpoint: d.checkpoint, verifierKey: d.verifierKey });
  } catch (e) {
    return fail("the check could not run: " + e);
  }
  if (!res.ok) return fail(res.reason);
  const policyText = d.witnessPolicy ?? "";
  const policyPinKey = `trail.witness-policy:${location.host}:${d.log}`;
  let pinnedPolicy = null;
  try { pinnedPolicy = localStorage.getItem(policyPinKey); } catch { /* storage off */ }
  // A policy, once seen, is pinned: a server that drops or weakens it is
  // caught. A log seen without one may gain one.
  if (pinnedPolicy && pinnedPolicy !== policyText) {
    return fail(policyText === ""
      ? "the log had a witness policy when this browser first saw it, and now has none. Do not trust this log until its operator explains why."
      : "the log's witness policy changed since this browser first saw it. Do not trust this log until its operator explains why.");
  }
  let wit = null;
  if (policyText !== "") {
    wit = await verifyWitnesses({ checkpoint: d.checkpoint, policy: policyText });
    if (!wit.ok) return fail(wit.reason);
  }
  let firstUse = false;
  if (!pinned) {
    try { localStorage.setItem(pinKey, d.verifierKey); firstUse = true; } catch { /* storage off */ }
  }
  if (!pinnedPolicy && policyText !== "") {
    try { localStorage.setItem(policyPinKey, policyText); } catch { /* storage off */ }
  }
  const signedBy = `checkpoint signed by ${res.signer} (key ${res.keyHash})`;
  const cosigned = wit && `${wit.cosigners.length} of ${wit.total} cosignatures`;
  if (wit && !wit.met) {
    status.className = "status fail";
    status.textContent = `✗ Not witnessed: ${cosigned} (quorum ${wit.quorum}${wit.missing.length ? "; missing " + wit.missing.join(", ") : ""}). ` +
      `The proof leads to a ${signedBy}, but not enough of its witnesses cosigned it, so nothing shows that others see the same log.`;
    box.classList.add("failed", "unwitnessed");
  } else {
    status.className = "status ok";
    status.textContent = `✓ Verified in tree of size ${res.treeSize.toLocaleString()}, ${signedBy}` +
      (wit ? ` and witnessed: ${cosigned} (quorum ${wit.quorum}).` : ".");
  }
  const rows = [
    ["Event", `seq ${res.seq}, leaf of the log's Merkle tree`],
    ["Tree size", String(res.treeSize)],
    ["Root hash", res.root],
    ["Checkpoint origin", res.origin],
    ["Signed by", `${res.signer} (key hash ${res.keyHash})`],
    ["Verifier key", d.verifierKey + (firstUse ? " (pinned in this browser now, on first use: compare it with the key trail init printed)" : " (matches the key pinned in this browser)")],
  ];
  if (wit) {
    rows.push(["Witness quorum", `${wit.quorum}: ${wit.met ? "met" : "NOT met"}, ${cosigned}`]);
    for (const c of wit.cosigners) {
      // The witness's own time, in the viewer's zone with UTC beside it.
      const when = document.createElement("time");
      when.className = "both";
      when.dateTime = c.time;
      when.textContent = c.time;
      rows.push([`Witness ${c.name}`, ["cosigned ", when]]);
    }
    for (const m of wit.missing) rows.push([`Witness ${m}`, "no valid cosignature"]);
  }
  details.replaceChildren(...rows.flatMap(([k, v]) => {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    if (Array.isArray(v)) dd.append(...v);
    else dd.textContent = v;
    return [dt, dd];
  }));
  localizeTimes(details);
  details.hidden = false;
  if (!wit || wit.met) box.classList.add("verified");
}

localizeTimes(document);
setUpFilters();
autoSubmit(document.querySelector(".trail-toggle"));
setUpMore();
setUpLive();
setUpVerify().finally(() => { document.documentElement.dataset.ready = "true"; });
