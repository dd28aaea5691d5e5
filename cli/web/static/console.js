// The lienthong console: one page over the HTTP contract of notes api.md
// (GET /api/overview, the SSE streams, the declaration and switch POSTs).
// Plain DOM, no framework and no build step: the page is served as is from
// the package, offline. Data from the server is only ever put in the page as
// text (textContent, setAttribute), never parsed as HTML.
"use strict";

(() => {
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);

  // ---- state --------------------------------------------------------------

  const page = {
    parties: [],            // from the last overview, in its order
    partyKey: "",           // names and kinds: redraw the picture when it changes
    active: new Map(),      // agency name -> active steps (overview, then step events)
    positions: new Map(),   // party name -> {x, y, w, h} in the picture
    switches: false,
    dossiers: new Map(),    // dossier id -> {row, item}
    settled: [],            // settled/s, one sample per overview event, last 60
    replayPoints: [],       // {t, p50, p95, p99}
    lastReplayElapsed: -1,
    stream: null,
    streamDropped: false,
    dossier: null,          // {id, source} of the open panel
    people: null,           // GET /api/people
    formKind: null,
    opener: null,           // what had focus before the drawer opened
  };

  const STATE_WORDS = {
    RECEIVED: "received",
    IN_PROGRESS: "in progress",
    NEEDS_SUPPLEMENT: "needs a supplement",
    COMPLETED: "completed",
    COMPLETED_WITH_REFUSALS: "completed with refusals",
    REJECTED: "rejected",
  };
  const COUNTER_ORDER = Object.keys(STATE_WORDS);
  let lastLatency = null;  // the overview's agency_latency_ms, kept between overviews

  // The main fields of each form: name = the dotted proto path inside the
  // declaration (what the API's violations name), label, input type. The rest
  // of the declaration from /api/people is sent back as it came.
  const FORMS = {
    birth: {
      title: "Declare a birth",
      submit: "Submit the birth declaration",
      fields: [
        ["child_full_name", "Child's full name"],
        ["child_sex", "Child's sex", "sex"],
        ["child_date_of_birth", "Date of birth (YYYY-MM-DD)"],
        ["place_of_birth", "Place of birth"],
        ["birth_certificate_number", "Birth certificate number"],
        ["mother_id_number", "Mother's personal ID number"],
        ["father_id_number", "Father's personal ID number"],
        ["declarant.full_name", "Declarant's full name"],
        ["declarant.personal_id_number", "Declarant's personal ID number"],
        ["declarant.relationship", "Declarant's relationship to the child"],
      ],
    },
    death: {
      title: "Declare a death",
      submit: "Submit the death declaration",
      fields: [
        ["deceased_id_number", "Deceased's personal ID number"],
        ["date_of_death", "Date of death (YYYY-MM-DD)"],
        ["time_of_death", "Time of death (HH:MM)"],
        ["place_of_death", "Place of death"],
        ["death_notice_number", "Death notice number"],
        ["declarant.full_name", "Declarant's full name"],
        ["declarant.personal_id_number", "Declarant's personal ID number"],
        ["declarant.relationship", "Declarant's relationship to the deceased"],
        ["payee.full_name", "Funeral allowance paid to"],
        ["payee.bank_account", "Payee's bank account"],
        ["claim_funeral_allowance", "Claim the funeral allowance", "checkbox"],
      ],
    },
  };
  const SEXES = [["SEX_FEMALE", "female"], ["SEX_MALE", "male"], ["SEX_UNSPECIFIED", "not stated"]];

  // ---- the API ------------------------------------------------------------

  class ApiError extends Error {
    constructor(message, status, body) {
      super(message);
      this.status = status;
      this.body = body;
    }
  }

  async function api(path, options = {}) {
    let response;
    try {
      response = await fetch(path, {
        ...options,
        headers: { "Accept": "application/json", ...(options.body ? { "Content-Type": "application/json" } : {}) },
      });
    } catch (error) {
      throw new ApiError("The console's server does not answer (is the stack still running?).", 0, null);
    }
    let body = null;
    try {
      body = await response.json();
    } catch (error) {
      body = null;
    }
    if (!response.ok) {
      const message = body && typeof body.message === "string"
        ? body.message
        : `The console's server answered ${response.status} ${response.statusText}.`;
      throw new ApiError(message, response.status, body);
    }
    return body;
  }

  function showApiError(message) {
    const banner = $("api-error");
    banner.textContent = message;
    banner.hidden = false;
  }

  function clearApiError() {
    $("api-error").hidden = true;
    $("api-error").textContent = "";
  }

  // An event handler that fails says so on the page rather than in the console.
  function guarded(handler) {
    return (...args) => {
      try {
        handler(...args);
      } catch (error) {
        showApiError(`The page could not show an update: ${error.message}`);
      }
    };
  }

  // ---- helpers ------------------------------------------------------------

  function el(tag, attributes = {}, text = null) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    if (text !== null) node.textContent = text;
    return node;
  }

  function svg(tag, attributes = {}, text = null) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
    if (text !== null) node.textContent = text;
    return node;
  }

  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  function rate(value) {
    return typeof value === "number" ? value.toFixed(1) : "–";
  }

  function whole(value) {
    return typeof value === "number" ? Math.round(value).toLocaleString("en") : "–";
  }

  function age(iso) {
    const since = (Date.now() - Date.parse(iso)) / 1000;
    if (!Number.isFinite(since)) return "";
    if (since < 60) return `${Math.max(0, Math.round(since))} s`;
    if (since < 3600) return `${Math.round(since / 60)} min`;
    return `${Math.round(since / 3600)} h`;
  }

  function secondsLeft(iso) {
    if (!iso) return null;
    const left = Math.round((Date.parse(iso) - Date.now()) / 1000);
    return Number.isFinite(left) ? Math.max(0, left) : null;
  }

  // "Population registry (Ministry of Public Security)" -> two lines.
  function splitLabel(label) {
    const open = label.indexOf(" (");
    if (open < 0) return [label, ""];
    return [label.slice(0, open), label.slice(open + 1)];
  }

  function clip(text, length) {
    return text.length > length ? `${text.slice(0, length - 1)}…` : text;
  }

  function words(name) {
    return String(name || "").replaceAll("_", " ");
  }

  // ---- the picture of the parties ----------------------------------------

  // A status in words (never by colour alone).
  function statusWord(party) {
    switch (party.status) {
      case "down": return "DOWN";
      case "slow": return `SLOW +${party.latency_ms || 0} ms`;
      case "external": return "external";
      default: return "up";
    }
  }

  function timeLeft(party) {
    const left = secondsLeft(party.fault_until);
    return left !== null && (party.status === "down" || party.status === "slow") ? `${left} s left` : "";
  }

  function statusWords(party) {
    const left = timeLeft(party);
    return left ? `${statusWord(party)} · ${left}` : statusWord(party);
  }

  function activeWords(name) {
    const count = page.active.get(name) || 0;
    return count === 1 ? "1 active step" : `${count} active steps`;
  }

  function drawParties(parties) {
    const picture = $("parties");
    for (const child of [...picture.childNodes]) {
      if (child.nodeName !== "title" && child.nodeName !== "desc") child.remove();
    }
    page.positions.clear();
    const width = 760;
    const height = 285;
    const citizens = parties.filter((p) => p.kind === "citizen");
    const gateways = parties.filter((p) => p.kind === "gateway");
    const agencies = parties.filter((p) => p.kind === "agency");
    const column = (list, x, w, h) => {
      const slot = height / Math.max(1, list.length);
      list.forEach((party, index) => {
        const boxH = Math.min(h, slot - 8);
        page.positions.set(party.name, { x, y: slot * index + (slot - boxH) / 2, w, h: boxH });
      });
    };
    column(citizens, 10, 150, 80);
    column(gateways, 240, 170, 80);
    column(agencies, 500, 250, 86);

    const links = svg("g", { class: "links" });
    const nodes = svg("g", { class: "nodes" });
    const centre = (name) => {
      const at = page.positions.get(name);
      return { x: at.x + at.w / 2, y: at.y + at.h / 2, at };
    };
    for (const gateway of gateways) {
      const g = centre(gateway.name);
      for (const citizen of citizens) {
        const c = centre(citizen.name);
        links.append(svg("line", {
          class: "link", id: `link-${citizen.name}`,
          x1: c.at.x + c.at.w, y1: c.y, x2: g.at.x, y2: g.y,
        }));
      }
      for (const agency of agencies) {
        const a = centre(agency.name);
        links.append(svg("line", {
          class: "link", id: `link-${agency.name}`,
          x1: g.at.x + g.at.w, y1: g.y, x2: a.at.x, y2: a.y,
        }));
      }
    }
    for (const party of parties) {
      const at = page.positions.get(party.name);
      if (!at) continue;
      const [main, sub] = splitLabel(party.label || party.name);
      const node = svg("g", { class: `node ${party.kind}`, id: `party-${party.name}`, "data-party": party.name });
      node.append(svg("title", {}, party.label || party.name));
      node.append(svg("rect", { x: at.x, y: at.y, width: at.w, height: at.h, rx: 10 }));
      const x = at.x + 10;
      const lines = party.kind === "agency" ? 4 : 2;
      const gap = Math.min(19, (at.h - 8) / lines);
      const top = at.y + at.h / 2 - ((lines - 1) * gap) / 2 + 5;
      node.append(svg("text", { class: "name", x, y: top }, clip(main, 24)));
      node.append(svg("text", { class: "sub", x, y: top + gap }, clip(sub || party.address || "", 30)));
      if (party.kind === "agency") {
        node.append(svg("text", { class: "status", x, y: top + 2 * gap }, ""));
        node.append(svg("text", { class: "active", x, y: top + 3 * gap }, ""));
      }
      nodes.append(node);
    }
    picture.append(links, nodes);
  }

  function updateParties() {
    const summary = [];
    for (const party of page.parties) {
      if (party.kind !== "agency") continue;
      const node = document.getElementById(`party-${party.name}`);
      const link = document.getElementById(`link-${party.name}`);
      const active = page.active.get(party.name) || 0;
      const status = party.status || "up";
      if (node) {
        for (const name of ["up", "down", "slow", "external"]) node.classList.toggle(name, status === name);
        node.classList.toggle("lit", active > 0);
        const line = node.querySelector(".status");
        if (line) setText(line, statusWords(party));
        const steps = node.querySelector(".active");
        if (steps) setText(steps, activeWords(party.name));
      }
      if (link) link.classList.toggle("busy", active > 0);
      summary.push(`${party.label || party.name}: ${statusWords(party)}, ${activeWords(party.name)}`);
    }
    setText($("parties-desc"), summary.length
      ? `The declarant sends to the gateway, which calls the agencies. ${summary.join("; ")}.`
      : "No agency in the overview.");
  }

  function pulse(agency) {
    const party = page.parties.find((p) => p.name === agency);
    const gateway = page.parties.find((p) => p.kind === "gateway");
    const start = gateway && page.positions.get(gateway.name);
    const end = page.positions.get(agency);
    if (!party || !start || !end) return;
    if (window.matchMedia("(prefers-reduced-motion: reduce)").matches) return;
    const x1 = start.x + start.w;
    const y1 = start.y + start.h / 2;
    const dot = svg("circle", { class: "pulse", cx: x1, cy: y1, r: 8 });
    $("parties").append(dot);
    // Removed by a timer too: a hidden tab may never finish the animation.
    setTimeout(() => dot.remove(), 1000);
    const animation = dot.animate(
      [{ transform: "translate(0px, 0px)" },
        { transform: `translate(${end.x - x1}px, ${end.y + end.h / 2 - y1}px)` }],
      { duration: 600, easing: "ease-in" },
    );
    animation.onfinish = () => dot.remove();
  }

  // ---- counters, throughput, latency, switches ---------------------------

  function renderCounters(counters) {
    const list = $("counters");
    for (const key of COUNTER_ORDER) {
      let item = list.querySelector(`[data-state="${key}"]`);
      const value = counters[key] || 0;
      // Needs-supplement is rare: shown once it happens.
      if (!item && key === "NEEDS_SUPPLEMENT" && !value) continue;
      if (!item) {
        item = el("li", { "data-state": key });
        item.append(el("span", { class: "count" }, "0"), el("span", { class: "label" }, STATE_WORDS[key]));
        const next = COUNTER_ORDER.slice(COUNTER_ORDER.indexOf(key) + 1)
          .map((k) => list.querySelector(`[data-state="${k}"]`)).find(Boolean);
        list.insertBefore(item, next || null);
      }
      setText(item.querySelector(".count"), whole(value));
    }
  }

  function renderThroughput(throughput) {
    setText($("settled-rate"), rate(throughput.settled_per_s));
    setText($("submitted-rate"), rate(throughput.submitted_per_s));
    page.settled.push(typeof throughput.settled_per_s === "number" ? throughput.settled_per_s : 0);
    if (page.settled.length > 60) page.settled.shift();
    const max = Math.max(1, ...page.settled);
    const chart = $("sparkline");
    chart.replaceChildren(svg("line", { x1: 0, y1: 43, x2: 240, y2: 43 }));
    const step = 240 / 59;
    const points = page.settled.map((value, index) =>
      `${(index + 60 - page.settled.length) * step},${(43 - (value / max) * 40).toFixed(1)}`);
    chart.append(svg("polyline", { points: points.join(" ") }));
    setText($("sparkline-caption"), `settled/s, last 60 s (top of the chart: ${rate(max)}/s)`);
  }

  function agencyRow(party) {
    const row = el("tr", { "data-agency": party.name });
    const title = el("th", { scope: "row", title: party.label || party.name }, splitLabel(party.label || party.name)[0]);
    row.append(title);
    row.append(el("td", { class: "status-cell" }));
    row.append(el("td", { class: "active-cell" }));
    row.append(el("td", { class: "latency-cell" }));
    const switches = el("td", { class: "switch-cell" });
    const name = party.label || party.name;
    const buttons = [
      ["outage", "Take down for 1 min", { seconds: 60 }, `Take ${name} down for one minute`],
      ["latency", "Add 800 ms for 1 min", { milliseconds: 800, seconds: 60 }, `Add 800 ms to ${name} for one minute`],
      ["restore", "Restore", null, `Restore ${name} now`],
    ];
    for (const [action, text, body, label] of buttons) {
      const button = el("button", { type: "button", class: "secondary", "data-action": action, "aria-label": label }, text);
      button.addEventListener("click", () => flipSwitch(party.name, action, body));
      switches.append(button);
    }
    switches.append(el("span", { class: "no-switch" }, ""));
    row.append(switches);
    return row;
  }

  function renderAgencies(latency) {
    const body = $("agency-table").querySelector("tbody");
    const agencies = page.parties.filter((p) => p.kind === "agency");
    const names = agencies.map((p) => p.name).join(",");
    if (body.dataset.names !== names) {
      body.replaceChildren(...agencies.map(agencyRow));
      body.dataset.names = names;
    }
    for (const party of agencies) {
      const row = body.querySelector(`tr[data-agency="${party.name}"]`);
      const status = row.querySelector(".status-cell");
      if (!status.firstChild) status.append(el("span", { class: "status-word" }), el("span", { class: "left" }));
      const word = status.firstChild;
      word.className = `status-word ${party.status || "up"}`;
      setText(word, statusWord(party));
      setText(status.lastChild, timeLeft(party));
      setText(row.querySelector(".active-cell"), String(page.active.get(party.name) || 0));
      const figures = (latency || {})[party.name];
      setText(row.querySelector(".latency-cell"), figures && figures.count
        ? `${whole(figures.p50)} / ${whole(figures.p95)} ms`
        : "–");
      const switchable = page.switches && party.status !== "external";
      for (const button of row.querySelectorAll("button")) {
        button.hidden = !switchable;
        if (button.dataset.action === "restore") {
          button.disabled = !(party.status === "down" || party.status === "slow");
        }
      }
      setText(row.querySelector(".no-switch"), switchable ? ""
        : party.status === "external" ? "not ours" : "off during a replay");
    }
  }

  async function flipSwitch(name, action, body) {
    const outcome = $("switch-outcome");
    outcome.textContent = "…";
    try {
      const party = await api(`/api/agencies/${encodeURIComponent(name)}/${action}`, {
        method: "POST",
        body: body ? JSON.stringify(body) : "{}",
      });
      const index = page.parties.findIndex((p) => p.name === name);
      if (index >= 0 && party && party.name === name) page.parties[index] = { ...page.parties[index], ...party };
      const label = (party && party.label) || name;
      outcome.textContent = action === "restore" ? `${label} is back.`
        : action === "outage" ? `${label} is down for ${body.seconds} s.`
          : `${label} answers ${body.milliseconds} ms slower for ${body.seconds} s.`;
      updateParties();
      renderAgencies(lastLatency);
    } catch (error) {
      outcome.textContent = error.message;
    }
  }

  // ---- recent dossiers ----------------------------------------------------

  function dossierLabel(row) {
    const where = row.ended ? "ended" : row.current_agency ? `at ${row.current_agency}` : "at the gateway";
    return `${row.procedure} dossier, ${STATE_WORDS[row.state] || row.state}, ${where}, ${age(row.submitted_at)} ago`;
  }

  function fillDossierButton(button, row) {
    const where = row.ended ? "ended" : row.current_agency ? `at ${row.current_agency}` : "at the gateway";
    const parts = [
      el("span", { class: "procedure" }, row.procedure),
      el("span", { class: `state ${row.state}` }, STATE_WORDS[row.state] || row.state),
      el("span", { class: "age" }, age(row.submitted_at)),
      el("span", { class: "where" }, `${where} · ${row.dossier_id}`),
    ];
    button.replaceChildren(...parts);
    button.setAttribute("aria-label", dossierLabel(row));
  }

  function upsertDossier(row) {
    if (!row || !row.dossier_id) return;
    const list = $("dossiers");
    const known = page.dossiers.get(row.dossier_id);
    if (known) {
      known.row = { ...known.row, ...row };
      fillDossierButton(known.button, known.row);
      return;
    }
    const item = el("li");
    const button = el("button", { type: "button", "data-dossier": row.dossier_id });
    button.addEventListener("click", () => openDossier(row.dossier_id));
    item.append(button);
    fillDossierButton(button, row);
    // Newest first; existing items never move (moving one would drop its focus).
    const newer = Date.parse(row.submitted_at);
    let before = null;
    for (const child of list.children) {
      const other = page.dossiers.get(child.firstChild.dataset.dossier);
      if (other && Date.parse(other.row.submitted_at) < newer) { before = child; break; }
    }
    list.insertBefore(item, before);
    page.dossiers.set(row.dossier_id, { row, button, item });
    while (list.children.length > 50) {
      const last = list.lastElementChild;
      if (last.contains(document.activeElement)) break;
      page.dossiers.delete(last.firstChild.dataset.dossier);
      last.remove();
    }
    $("dossiers-empty").hidden = true;
  }

  function tickAges() {
    for (const { row, button } of page.dossiers.values()) {
      const span = button.querySelector(".age");
      if (span) setText(span, age(row.submitted_at));
      button.setAttribute("aria-label", dossierLabel(row));
    }
    updateParties();
    if (page.parties.length) renderAgencies(lastLatency);
  }

  // ---- the step events: light the agencies --------------------------------

  function applyStep(step) {
    if (!step || !step.agency) return;
    const count = page.active.get(step.agency) || 0;
    if (step.phase === "started") {
      page.active.set(step.agency, count + 1);
      pulse(step.agency);
    } else if (step.phase === "ended") {
      page.active.set(step.agency, Math.max(0, count - 1));
    }
    updateParties();
    renderAgencies(lastLatency);
  }

  // ---- the overview ---------------------------------------------------------

  function applyOverview(overview) {
    if (!overview) return;
    if (overview.title) {
      setText($("title"), overview.title);
      document.title = `${overview.title} — console`;
    }
    if (Array.isArray(overview.parties)) {
      page.parties = overview.parties;
      const key = overview.parties.map((p) => `${p.name}:${p.kind}:${p.label}`).join("|");
      if (key !== page.partyKey) {
        drawParties(overview.parties);
        page.partyKey = key;
      }
      for (const party of overview.parties) {
        if (party.kind === "agency") page.active.set(party.name, party.active_steps || 0);
      }
    }
    page.switches = overview.switches === true;
    if (overview.counters) renderCounters(overview.counters);
    if (overview.throughput) renderThroughput(overview.throughput);
    if (overview.agency_latency_ms) lastLatency = overview.agency_latency_ms;
    updateParties();
    renderAgencies(lastLatency);
    if (Array.isArray(overview.recent)) {
      // The list is newest first: insert the oldest first so each lands on top.
      for (const row of [...overview.recent].reverse()) upsertDossier(row);
    }
    if (overview.replay) applyReplay(overview.replay);
  }

  async function loadOverview() {
    try {
      const overview = await api("/api/overview");
      clearApiError();
      applyOverview(overview);
      return true;
    } catch (error) {
      showApiError(`Cannot read the console's overview: ${error.message} Trying again in 3 s.`);
      setTimeout(loadOverview, 3000);
      return false;
    }
  }

  // ---- the replay -----------------------------------------------------------

  function applyReplay(stats) {
    if (!stats) return;
    $("replay").hidden = false;
    // The replay's stack, and this console with it, stop once it has its
    // verdict: the stream ending then is the end, not an outage.
    if (stats.final) page.replayEnded = stats.final;
    const phase = stats.phase ? ` — ${stats.phase}` : "";
    const time = typeof stats.elapsed_s === "number"
      ? ` (${Math.round(stats.elapsed_s)} s${stats.duration_s ? ` of ${Math.round(stats.duration_s)} s` : ""})` : "";
    setText($("replay-heading"), `Replay ${stats.scenario || ""}${phase}${time}`);
    setText($("replay-planned"), whole(stats.planned));
    setText($("replay-sent"), whole(stats.sent));
    setText($("replay-settled"), whole(stats.settled));
    setText($("replay-in-flight"), whole(stats.in_flight));
    setText($("replay-throughput"), rate(stats.throughput_per_s));
    const latency = stats.latency_ms || {};
    setText($("replay-p50"), whole(latency.p50));
    setText($("replay-p95"), whole(latency.p95));
    setText($("replay-p99"), whole(latency.p99));
    if (typeof stats.elapsed_s === "number" && stats.elapsed_s !== page.lastReplayElapsed) {
      page.lastReplayElapsed = stats.elapsed_s;
      if (typeof latency.p50 === "number") {
        page.replayPoints.push({ t: stats.elapsed_s, p50: latency.p50, p95: latency.p95, p99: latency.p99 });
        if (page.replayPoints.length > 600) page.replayPoints.shift();
        drawReplayChart();
      }
    }
    renderReplayFinal(stats.final);
  }

  function drawReplayChart() {
    const chart = $("replay-chart");
    const points = page.replayPoints;
    chart.replaceChildren();
    if (!points.length) return;
    const top = Math.max(1, ...points.map((p) => p.p99 || p.p95 || p.p50 || 0));
    const first = points[0].t;
    const span = Math.max(1, points[points.length - 1].t - first);
    for (const key of ["p50", "p95", "p99"]) {
      const line = points
        .filter((p) => typeof p[key] === "number")
        .map((p) => `${(30 + ((p.t - first) / span) * 445).toFixed(1)},${(66 - (p[key] / top) * 58).toFixed(1)}`);
      chart.append(svg("polyline", { class: key, points: line.join(" ") }));
    }
    chart.append(svg("text", { x: 2, y: 12 }, `${whole(top)}`));
    chart.append(svg("text", { x: 2, y: 66 }, "0"));
  }

  function verdict(count, noun, good, bad) {
    const box = el("p", { class: `verdict ${count === 0 ? "good" : "bad"}`, "data-verdict": noun });
    box.append(el("span", { class: "figure" }, `${noun} ${whole(count)}`));
    box.append(el("span", { class: "word" }, count === 0 ? good : bad));
    return box;
  }

  function renderReplayFinal(final) {
    const box = $("replay-final");
    if (!final) { box.hidden = true; return; }
    if (box.dataset.shown === "yes") return;
    box.dataset.shown = "yes";
    box.replaceChildren(
      verdict(final.lost, "Lost", "none lost", "LOST: dossiers never settled"),
      verdict(final.duplicated, "Duplicated", "no duplicates", "DUPLICATED: settled twice"),
    );
    const more = el("p", { class: "caption" },
      `completed ${whole(final.completed)}, unexpected ${whole(final.unexpected)}`
      + (final.report_dir ? `; report in ${final.report_dir}` : ""));
    box.append(more);
    box.hidden = false;
  }

  // ---- the drawer: a dossier's panel or a form ------------------------------

  function openDrawer(mode, heading) {
    const drawer = $("drawer");
    if (drawer.hidden) page.opener = document.activeElement;
    drawer.hidden = false;
    $("dossier-panel").hidden = mode !== "dossier";
    $("declaration-form").hidden = mode !== "form";
    $("drawer-heading").textContent = heading;
    $("open-birth").setAttribute("aria-expanded", String(mode === "form" && page.formKind === "birth"));
    $("open-death").setAttribute("aria-expanded", String(mode === "form" && page.formKind === "death"));
  }

  function closeDrawer() {
    stopDossierStream();
    page.dossier = null;
    $("drawer").hidden = true;
    $("open-birth").setAttribute("aria-expanded", "false");
    $("open-death").setAttribute("aria-expanded", "false");
    if (location.hash) history.replaceState(null, "", location.pathname + location.search);
    const opener = page.opener;
    page.opener = null;
    if (opener && document.contains(opener)) opener.focus();
  }

  function stopDossierStream() {
    if (page.dossier && page.dossier.source) {
      page.dossier.source.close();
      page.dossier.source = null;
    }
  }

  async function openDossier(id) {
    stopDossierStream();
    page.formKind = null;
    page.dossier = { id, source: null };
    openDrawer("dossier", `Dossier ${id}`);
    const wanted = `#dossier=${encodeURIComponent(id)}`;
    if (location.hash !== wanted) history.replaceState(null, "", wanted);
    $("drawer-heading").focus();
    setText($("dossier-state"), "Loading…");
    $("timeline").querySelector("tbody").replaceChildren();
    $("dossier-results").replaceChildren();
    $("dossier-procedures").replaceChildren();
    let detail;
    try {
      detail = await api(`/api/dossiers/${encodeURIComponent(id)}`);
    } catch (error) {
      if (page.dossier && page.dossier.id === id) setText($("dossier-state"), error.message);
      return;
    }
    if (!page.dossier || page.dossier.id !== id) return;
    renderDossier(detail);
    if (!detail.ended) watchDossier(id);
  }

  function watchDossier(id) {
    const source = new EventSource(`/api/dossiers/${encodeURIComponent(id)}/stream`);
    page.dossier.source = source;
    source.addEventListener("dossier", guarded((event) => {
      if (page.dossier && page.dossier.id === id) renderDossier(JSON.parse(event.data));
    }));
    source.addEventListener("end", () => {
      source.close();
      if (page.dossier && page.dossier.source === source) page.dossier.source = null;
    });
    source.onerror = () => {
      // EventSource retries on its own; a closed one (a 4xx) is said once.
      if (source.readyState === EventSource.CLOSED && page.dossier && page.dossier.id === id) {
        setText($("dossier-state"), `${$("dossier-state").textContent} (live updates stopped)`);
      }
    };
  }

  function renderDossier(detail) {
    const procedure = detail.procedure ? `${detail.procedure[0].toUpperCase()}${detail.procedure.slice(1)}` : "";
    setText($("drawer-heading"), `${procedure} dossier ${detail.dossier_id}`);
    const stateLine = $("dossier-state");
    stateLine.replaceChildren(
      el("span", { class: `state ${detail.state}`, "data-state": detail.state }, detail.state),
      document.createTextNode(` — ${STATE_WORDS[detail.state] || ""}${detail.ended ? " (ended)" : ""}`),
    );
    const body = $("timeline").querySelector("tbody");
    const rows = (detail.timeline || []).map((step) => {
      // Three columns, so that the outcome (the longest) has room in the drawer.
      const row = el("tr");
      const what = el("td");
      what.append(el("span", { class: "step" }, words(step.step)), el("span", { class: "agency" }, step.agency || ""));
      const how = el("td");
      const took = typeof step.elapsed_ms === "number" ? `${whole(step.elapsed_ms)} ms` : "";
      const tries = step.attempts ? `${step.attempts} ${step.attempts === 1 ? "try" : "tries"}` : "";
      how.append(
        el("span", { class: `state ${step.state}`, "data-step-state": step.state || "" }, step.state || ""),
        el("span", { class: "figures" }, [took, tries].filter(Boolean).join(" · ")),
      );
      row.append(what, how, el("td", { class: "step-outcome" }, step.outcome || ""));
      return row;
    });
    if (!rows.length) {
      const row = el("tr");
      row.append(el("td", { colspan: "3" }, "(no step yet)"));
      rows.push(row);
    }
    body.replaceChildren(...rows);
    // The results are `lienthong status`'s lines; each procedure's own line is
    // shown under Procedures, so its bullet lines are left out here.
    const results = (detail.results || []).filter(
      (line) => !/^\s*•/.test(line) && line !== "Each procedure's own result:");
    $("dossier-results").replaceChildren(...results.map((line) => el("li", {}, line.trim())));
    $("dossier-procedures").replaceChildren(...(detail.procedures || []).map((line) => el("li", {}, line)));
    if (detail.dossier_id) upsertDossier({
      dossier_id: detail.dossier_id, procedure: detail.procedure, state: detail.state,
      submitted_at: detail.submitted_at, ended: detail.ended,
      current_agency: (detail.timeline || []).filter((s) => s.state === "RUNNING").map((s) => s.agency)[0] || null,
    });
  }

  function openFromHash() {
    const match = /^#dossier=(.+)$/.exec(location.hash);
    if (match) {
      const id = decodeURIComponent(match[1]);
      if (!page.dossier || page.dossier.id !== id) openDossier(id);
    }
  }

  // ---- the declaration forms ------------------------------------------------

  function valueAt(object, path) {
    return path.split(".").reduce((node, key) => (node && typeof node === "object" ? node[key] : undefined), object);
  }

  function setAt(object, path, value) {
    const keys = path.split(".");
    let node = object;
    for (const key of keys.slice(0, -1)) {
      if (!node[key] || typeof node[key] !== "object") node[key] = {};
      node = node[key];
    }
    node[keys[keys.length - 1]] = value;
  }

  function fieldId(kind, path) {
    return `field-${kind}-${path.replaceAll(".", "-")}`;
  }

  function buildForm(kind) {
    const fields = $("form-fields");
    const nodes = FORMS[kind].fields.map(([path, label, type]) => {
      const id = fieldId(kind, path);
      const wrap = el("div", { class: type === "checkbox" ? "field checkbox" : "field" });
      let input;
      if (type === "sex") {
        input = el("select", { id, name: path });
        for (const [value, text] of SEXES) input.append(el("option", { value }, text));
      } else if (type === "checkbox") {
        input = el("input", { id, name: path, type: "checkbox" });
      } else {
        input = el("input", { id, name: path, type: "text", autocomplete: "off", spellcheck: "false" });
      }
      wrap.append(el("label", { for: id }, label), input);
      return wrap;
    });
    fields.replaceChildren(...nodes);
    $("form-submit").textContent = FORMS[kind].submit;
  }

  function fillForm(kind) {
    const example = page.people && page.people[kind];
    if (!example) return;
    setText($("form-example"), `Example: ${example.label || ""}`);
    for (const [path, , type] of FORMS[kind].fields) {
      const input = document.getElementById(fieldId(kind, path));
      const value = valueAt(example.declaration, path);
      if (type === "checkbox") input.checked = value === true;
      else if (type === "sex") input.value = value || "SEX_UNSPECIFIED";
      else input.value = value === undefined || value === null ? "" : String(value);
    }
  }

  async function loadPeople() {
    setText($("form-outcome"), "Making a new example family…");
    try {
      page.people = await api("/api/people");
      setText($("form-outcome"), "");
      return true;
    } catch (error) {
      setText($("form-outcome"), `Cannot make an example family: ${error.message}`);
      return false;
    }
  }

  async function openForm(kind) {
    stopDossierStream();
    page.dossier = null;
    if (location.hash) history.replaceState(null, "", location.pathname + location.search);
    page.formKind = kind;
    openDrawer("form", FORMS[kind].title);
    buildForm(kind);
    clearViolations();
    const first = document.getElementById(fieldId(kind, FORMS[kind].fields[0][0]));
    if (!page.people) await loadPeople();
    fillForm(kind);
    if (page.formKind === kind) first.focus();
  }

  function clearViolations() {
    const form = $("declaration-form");
    for (const input of form.querySelectorAll("[aria-invalid]")) {
      input.removeAttribute("aria-invalid");
      input.removeAttribute("aria-describedby");
    }
    for (const error of form.querySelectorAll(".field .error")) error.remove();
    $("form-summary").hidden = true;
    $("form-summary").replaceChildren();
  }

  function showViolations(message, violations) {
    const form = $("declaration-form");
    const unplaced = [];
    let first = null;
    for (const violation of violations || []) {
      const field = String(violation.field || "").replace(/^declaration\./, "");
      const input = [...form.querySelectorAll("[name]")].find((node) => node.name === field);
      if (!input) {
        unplaced.push(violation);
        continue;
      }
      const errorId = `${input.id}-error`;
      let error = document.getElementById(errorId);
      if (!error) {
        error = el("p", { class: "error", id: errorId });
        input.after(error);
      }
      error.textContent = error.textContent ? `${error.textContent}; ${violation.message}` : violation.message;
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", errorId);
      first = first || input;
    }
    const summary = $("form-summary");
    summary.replaceChildren(el("p", {}, message));
    if (unplaced.length) {
      const list = el("ul");
      for (const violation of unplaced) list.append(el("li", {}, `${violation.field || "the declaration"}: ${violation.message}`));
      summary.append(list);
    }
    summary.hidden = false;
    if (first) first.focus();
  }

  async function submitForm(event) {
    event.preventDefault();
    const kind = page.formKind;
    if (!kind) return;
    const example = page.people && page.people[kind];
    const declaration = example ? structuredClone(example.declaration) : {};
    for (const [path, , type] of FORMS[kind].fields) {
      const input = document.getElementById(fieldId(kind, path));
      setAt(declaration, path, type === "checkbox" ? input.checked : input.value);
    }
    clearViolations();
    const button = $("form-submit");
    button.disabled = true;
    setText($("form-outcome"), "Submitting…");
    try {
      const answer = await api(`/api/declarations/${kind}`, {
        method: "POST",
        body: JSON.stringify({ declaration }),
      });
      setText($("form-outcome"), `Submitted: dossier ${answer.dossier_id}.`);
      upsertDossier({
        dossier_id: answer.dossier_id, procedure: kind, state: answer.state || "RECEIVED",
        submitted_at: new Date().toISOString(), current_agency: null, ended: false,
      });
      openDossier(answer.dossier_id);
    } catch (error) {
      setText($("form-outcome"), "Not submitted.");
      showViolations(error.message, error.body && error.body.violations);
    } finally {
      button.disabled = false;
    }
  }

  // ---- the live stream ------------------------------------------------------

  function setConnection(text, live) {
    const line = $("connection");
    setText(line, text);
    line.classList.toggle("live", live);
    line.classList.toggle("lost", !live);
  }

  function connectStream() {
    const source = new EventSource("/api/stream");
    page.stream = source;
    source.addEventListener("overview", guarded((event) => applyOverview(JSON.parse(event.data))));
    source.addEventListener("dossier", guarded((event) => upsertDossier(JSON.parse(event.data))));
    source.addEventListener("step", guarded((event) => applyStep(JSON.parse(event.data))));
    source.addEventListener("replay", guarded((event) => applyReplay(JSON.parse(event.data))));
    source.onopen = () => {
      setConnection("Live", true);
      if (page.streamDropped) {
        page.streamDropped = false;
        // Events were missed while away: the overview has the whole picture.
        loadOverview();
      }
    };
    source.onerror = () => {
      if (page.replayEnded) {
        source.close();
        const where = page.replayEnded.report_dir;
        setConnection("Replay ended; the console stopped with it"
          + (where ? ` (report: ${where}/report.html)` : ""), false);
        return;
      }
      page.streamDropped = true;
      setConnection("Reconnecting…", false);
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (the server answered with an error): try again.
        setTimeout(() => { if (page.stream === source) connectStream(); }, 3000);
      }
    };
  }

  // ---- start ----------------------------------------------------------------

  function start() {
    $("open-birth").addEventListener("click", () => openForm("birth"));
    $("open-death").addEventListener("click", () => openForm("death"));
    $("drawer-close").addEventListener("click", closeDrawer);
    $("drawer").addEventListener("keydown", (event) => {
      if (event.key === "Escape") closeDrawer();
    });
    $("declaration-form").addEventListener("submit", submitForm);
    $("new-example").addEventListener("click", async () => {
      if (await loadPeople()) {
        clearViolations();
        fillForm(page.formKind);
        setText($("form-outcome"), "A new example family is filled in.");
      }
    });
    window.addEventListener("hashchange", openFromHash);
    loadOverview().then(openFromHash);
    connectStream();
    setInterval(guarded(tickAges), 1000);
  }

  start();
})();
