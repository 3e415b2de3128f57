/* Walls and kiosks: fit any screen, rotate through a playlist, jump to new critical incidents.

   Two stacked slots hold two views: the one on screen and the next, loaded while hidden, so a
   view is shown only once its map and figures are there (a cross-fade swaps them). `step` is the
   whole schedule as a pure function of (state, inputs), so it can be tested in the browser. */
(function () {
  const SLOTS = ["a", "b"];
  const QUEUE_MAX = 3;
  // a 预警 is reported on every poll while its breach is near: each is queued once (the last
  // SEEN_MAX remembered, so the memory stays small)
  const SEEN_MAX = 200;
  const other = function (slot) { return slot === "a" ? "b" : "a"; };

  function focusView(incident) {
    if (incident.kind === "warning") {
      // a level's rise: its place on the scenario (no marker: a level is not a point)
      return {district: incident.district || null, street: null, category: incident.category,
              key: "warning:" + incident.id, focus: {id: incident.id, kind: "warning"}};
    }
    return {
      district: incident.district, street: incident.street || null, category: null,
      key: "focus:" + incident.id,
      focus: {id: incident.id, lon: incident.lon, lat: incident.lat, severity: incident.severity,
              kind: incident.kind === "forecast" ? "forecast" : "alarm"},
    };
  }

  function initialState(views, now) {
    return {
      active: "a",
      slots: {a: views[0], b: views[Math.min(1, views.length - 1)]},
      idx: 0,
      shownAt: now,
      phase: "rotate",
      attention: null,
      queue: [],
      seen: [],
      seenGroups: [],
      overflow: 0,
      lastAttentionEnd: -Infinity,
      request: null,
      returning: false,
      flips: 0,
      attentions: 0,
      revoked: false,
    };
  }

  // an incident's event: as reported with it, or as learnt since (the rules group incidents a
  // few seconds after they open)
  function eventOf(incident, groups) {
    return incident.group || groups[incident.id] || null;
  }

  // one event takes the wall once: of the waiting incidents, only the first of an event not
  // on screen and not shown before stays (a storm's criticals are one attention, not dozens)
  function foldEvents(s, groups) {
    const onScreen = s.phase === "attention" ? eventOf(s.attention.incident, groups) : null;
    const taken = (s.seenGroups || []).concat(onScreen ? [onScreen] : []);
    const kept = [];
    s.queue.forEach(function (incident) {
      const group = eventOf(incident, groups);
      if (group && taken.indexOf(group) >= 0) { return; }
      if (group) { taken.push(group); }
      kept.push(group ? Object.assign({}, incident, {group: group}) : incident);
    });
    return kept;
  }

  /* The next state. `inp`: now, views, intervalMs, attentionMs, idleMs, mode, ready {a, b},
     alerts [incidents], statuses {id: status}, groups {id: event}, lastTouch, goto (a view or
     null), revoked. */
  function step(prev, inp) {
    const s = Object.assign({}, prev, {slots: Object.assign({}, prev.slots)});
    const now = inp.now;
    const views = inp.views;
    const n = views.length;
    if (inp.revoked) { s.revoked = true; return s; }
    // new critical incidents wait in a short queue (newest kept); the rest are counted
    if (inp.mode === "wall") {
      // the server reports each incident once per opening (or reopening, or escalation);
      // only one already waiting or on screen is not queued again (no ever-growing memory)
      (inp.alerts || []).forEach(function (incident) {
        const showing = s.phase === "attention" && s.attention.incident.id === incident.id;
        const waiting = s.queue.some(function (i) { return i.id === incident.id; });
        const forecast = incident.kind === "forecast";
        const seen = forecast && (s.seen || []).indexOf(incident.id) >= 0;
        if (!showing && !waiting && !seen) { s.queue = s.queue.concat([incident]); }
        if (forecast && !seen) { s.seen = (s.seen || []).concat([incident.id]).slice(-SEEN_MAX); }
      });
      s.queue = foldEvents(s, inp.groups || {});
      if (s.queue.length > QUEUE_MAX) {
        s.overflow += s.queue.length - QUEUE_MAX;
        s.queue = s.queue.slice(s.queue.length - QUEUE_MAX);
      }
      // an incident acknowledged or resolved meanwhile no longer needs the wall
      const statuses = inp.statuses || {};
      s.queue = s.queue.filter(function (i) { return !statuses[i.id] || statuses[i.id] === "open"; });
    }
    // kiosk: a touch leaves the attract loop; a request moves to another view
    if (inp.mode === "kiosk") {
      const idle = now - (inp.lastTouch || -Infinity) >= inp.idleMs;
      if (s.phase === "explore" && idle) {
        s.phase = "rotate";
        s.shownAt = now;
        s.request = null;
        s.returning = true;  // straight back to the playlist, not after a whole interval
      } else if (s.phase === "rotate" && !idle) {
        s.phase = "explore";
      }
      if (inp.goto) { s.phase = "explore"; s.request = inp.goto; }
    }
    const hidden = other(s.active);
    // after a run of alerts the rotation gets the screen back for a while (the shorter of a
    // view and an alert), so a storm of incidents cannot hold the wall for good
    const attentionDue = s.phase === "rotate" && s.queue.length > 0 &&
      now - s.lastAttentionEnd >= Math.min(inp.intervalMs, inp.attentionMs);
    let attentionOver = false;
    if (s.phase === "attention") {
      const current = s.attention.incident;
      const status = (inp.statuses || {})[current.id];
      attentionOver = now >= s.attention.until || (status && status !== "open");
    }
    if (s.returning && s.slots[s.active].key === views[s.idx % n].key) { s.returning = false; }
    // what the hidden slot should hold now
    let desired;
    if (s.phase === "explore") {
      desired = s.request || s.slots[s.active];
    } else if (attentionDue || (s.phase === "attention" && s.queue.length > 0)) {
      desired = focusView(s.queue[0]);
    } else if (s.phase === "attention" || s.returning) {
      desired = views[s.idx % n];  // resume where the rotation was interrupted
    } else {
      desired = views[(s.idx + 1) % n];
    }
    if (!s.slots[hidden] || s.slots[hidden].key !== desired.key) {
      s.slots[hidden] = desired;
      return s;  // it starts loading now; ready is reported for it later
    }
    const ready = !!(inp.ready || {})[hidden];
    let flip = false;
    if (s.phase === "explore") {
      flip = !!s.request && s.request.key !== s.slots[s.active].key && ready;
      if (flip) { s.request = null; }
    } else if (s.phase === "attention") {
      if (attentionOver && ready) {
        flip = true;
        if (desired.focus) {
          s.attention = {incident: s.queue[0], until: now + inp.attentionMs};
          s.queue = s.queue.slice(1);
          s.attentions += 1;
        } else {
          s.phase = "rotate";
          s.attention = null;
          s.overflow = 0;
          s.lastAttentionEnd = now;
        }
      }
    } else if (attentionDue && ready) {
      flip = true;
      s.phase = "attention";
      s.attention = {incident: s.queue[0], until: now + inp.attentionMs};
      s.queue = s.queue.slice(1);
      s.attentions += 1;
    } else if (s.returning && ready) {
      flip = true;
      s.returning = false;
    } else if (n > 1 && now - s.shownAt >= inp.intervalMs && ready) {
      flip = true;
      s.idx = (s.idx + 1) % n;
    }
    if (flip) {
      s.active = hidden;
      s.shownAt = now;
      s.flips += 1;
    }
    // an event once on screen is remembered (SEEN_MAX of them): its later incidents wait no more
    const shownEvent = s.phase === "attention" ? eventOf(s.attention.incident, inp.groups || {}) : null;
    if (shownEvent && (s.seenGroups || []).indexOf(shownEvent) < 0) {
      s.seenGroups = (s.seenGroups || []).concat([shownEvent]).slice(-SEEN_MAX);
    }
    return s;
  }

  /* Is the slot's map showing `view`'s areas? Each area path carries its district's code. */
  function mapShows(slot, view) {
    const el = document.getElementById("wall-slot-" + slot);
    if (!el) { return false; }
    const areas = el.querySelectorAll("path.os-area");
    if (!areas.length) { return false; }
    const districts = {};
    areas.forEach(function (path) {
      const m = /os-area-d(\d+)/.exec(path.getAttribute("class") || "");
      if (m) { districts[m[1]] = true; }
    });
    const seen = Object.keys(districts);
    if (!view.district) { return seen.length > 1; }
    return seen.length === 1 && seen[0] === view.district;
  }

  function beep() {
    try {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      const ctx = W.audio = W.audio || new Ctx();
      [0, 0.35].forEach(function (offset, i) {
        const osc = ctx.createOscillator(), gain = ctx.createGain();
        osc.frequency.value = i ? 660 : 880;
        gain.gain.setValueAtTime(0.0001, ctx.currentTime + offset);
        gain.gain.exponentialRampToValueAtTime(0.25, ctx.currentTime + offset + 0.02);
        gain.gain.exponentialRampToValueAtTime(0.0001, ctx.currentTime + offset + 0.3);
        osc.connect(gain).connect(ctx.destination);
        osc.start(ctx.currentTime + offset);
        osc.stop(ctx.currentTime + offset + 0.32);
      });
      W.beeps = (W.beeps || 0) + 1;
    } catch (e) { /* no audio device: the wall still shows the incident */ }
  }

  /* A full reload only when the server answers, so a wall never lands on an error page. */
  function safeReload(reason) {
    if (W.reloading) { return; }
    W.reloading = true;
    fetch(window.location.href, {cache: "no-store"}).then(function (response) {
      if (response.ok) { window.location.reload(); } else { W.reloading = false; }
    }).catch(function () { W.reloading = false; });
    W.lastReloadReason = reason;
  }

  /* The screen's shape, from its aspect ratio: each has a layout (onescreen_shapes.css). */
  function wallShape(aspect) {
    if (aspect < 1) { return "portrait"; }
    if (aspect < 2.1) { return "standard"; }  // 16:9, 16:10, 4:3
    if (aspect < 2.9) { return "wide"; }  // 21:9
    return aspect < 4.4 ? "twin" : "ultrawide";  // two (32:9) or three (48:9) 16:9 screens
  }

  function fitCanvas() {
    // design size 1920×1080 at least (1080×1920 on a portrait screen); the canvas grows along
    // whichever side the screen has more of, then scales to fill the viewport exactly (never
    // scrolls, never letterboxes)
    const w = window.innerWidth, h = window.innerHeight;
    const scale = h > w ? Math.min(w / 1080, h / 1920) : Math.min(w / 1920, h / 1080);
    const root = document.documentElement;
    root.style.setProperty("--wall-scale", String(scale));
    root.style.setProperty("--wall-w", (w / scale) + "px");
    root.style.setProperty("--wall-h", (h / scale) + "px");
    root.dataset.wallShape = wallShape(w / h);
  }

  /* Kiosk: the scope and category on screen lit, 返回上级 dimmed at city level, the touch
     prompt over the foot of the map on screen (clear of its legend and scale). */
  function markKiosk(view) {
    const level = view.street ? "street" : (view.district ? "district" : "city");
    const category = view.category || "all";
    document.querySelectorAll(".os-kiosk-btn").forEach(function (button) {
      const target = (JSON.parse(button.id || "{}") || {}).target;
      const on = target === category || (target === "city" && level === "city");
      const off = target === "up" && level === "city";
      button.classList.toggle("os-kiosk-btn-on", on);
      button.classList.toggle("os-kiosk-btn-off", off);
      button.setAttribute("aria-pressed", on ? "true" : "false");
      button.setAttribute("aria-disabled", off ? "true" : "false");
    });
    const prompt = document.querySelector(".os-kiosk-attract");
    const map = document.querySelector(".os-wall-slot-active .os-wall-area-map .os-map-wrap");
    const canvas = document.querySelector(".os-wall-canvas");
    if (!prompt || !map || !canvas) { return; }
    const scale = parseFloat(document.documentElement.style.getPropertyValue("--wall-scale")) || 1;
    const box = map.getBoundingClientRect(), origin = canvas.getBoundingClientRect();
    // centred on the city's side of the map, clear of the inset and legend's column and of
    // the attribution at the map's foot (longer in English than the column is wide)
    const column = map.classList.contains("os-core-stacked") && map.querySelector(".os-core-inset");
    const credit = map.querySelector(".leaflet-control-attribution");
    let right = column ? column.getBoundingClientRect().left : box.right;
    if (credit && credit.offsetWidth) { right = Math.min(right, credit.getBoundingClientRect().left - 12); }
    // a prompt longer than the city's side is (English on a portrait map) takes two lines
    prompt.style.maxWidth = ((right - box.left - 24) / scale) + "px";
    prompt.style.left = ((box.left + (right - box.left) / 2 - origin.left) / scale) + "px";
    prompt.style.bottom = ((origin.bottom - box.bottom) / scale + 16) + "px";
  }

  const W = {
    SLOTS: SLOTS,
    step: step,
    initialState: initialState,
    focusView: focusView,
    mapShows: mapShows,
    fitCanvas: fitCanvas,
    wallShape: wallShape,
    markKiosk: markKiosk,
    safeReload: safeReload,
    state: null,
    stats: {ticks: 0, polls: 0, flips: 0, attentions: 0},
    lastTouch: -Infinity,
    loadedAt: Date.now(),
  };
  window.onescreen = Object.assign({}, window.onescreen, {wall: W});
  window.addEventListener("resize", function () { if (document.querySelector(".os-wall")) { fitCanvas(); } });
  // before the first layout: the maps are fitted to the canvas they will keep
  if (/^\/(wall|kiosk)\b/.test(window.location.pathname)) { fitCanvas(); }
  ["pointerdown", "touchstart", "keydown", "wheel"].forEach(function (type) {
    document.addEventListener(type, function () { W.lastTouch = Date.now(); }, {passive: true, capture: true});
  });

  /* The Dash side: one clientside callback on the clock, the alerts and the kiosk's controls. */
  W.tick = function (_tick, alerts, _areaClicks, _gotoClicks, readyKeys, config) {
    const nu = window.dash_clientside.no_update;
    if (!config || !config.views || !config.views.length) { return Array(9).fill(nu); }
    if (!document.documentElement.style.getPropertyValue("--wall-scale")) { fitCanvas(); }
    const now = Date.now();
    const views = config.views;
    const prev = W.state || initialState(views, now);
    const triggered = (window.dash_clientside.callback_context.triggered || []).map(function (t) { return t.prop_id; });
    let fresh = [];
    let statuses = {};
    let groups = {};
    let revoked = false;
    if (alerts && alerts !== W.lastAlerts) {
      W.lastAlerts = alerts;
      W.stats.polls += 1;
      fresh = alerts.new || [];
      statuses = alerts.statuses || {};
      groups = alerts.groups || {};
      revoked = !!alerts.revoked;
      if (alerts.version && config.version && alerts.version !== config.version) {
        safeReload("version");
      }
    }
    // kiosk: the control or map area that was touched names the view to go to
    let goto = null;
    if (config.mode === "kiosk") {
      const current = prev.slots[prev.active];
      triggered.forEach(function (propId) {
        if (propId.indexOf("wall-goto") >= 0 && propId.endsWith(".n_clicks")) {
          const id = JSON.parse(propId.slice(0, propId.lastIndexOf(".")));
          goto = W.gotoView(id.target, current, config);
        } else if (propId.indexOf("wall-areas") >= 0 && propId.endsWith(".clickData")) {
          const id = JSON.parse(propId.slice(0, propId.lastIndexOf(".")));
          if (id.slot === prev.active) {
            const feature = _areaClicks[SLOTS.indexOf(id.slot)];
            goto = W.areaView(feature, current, config);
          }
        }
      });
      if (goto) { W.lastTouch = now; }
    }
    const ready = {};
    SLOTS.forEach(function (slot, i) {
      const view = prev.slots[slot];
      const said = (readyKeys || [])[i];
      ready[slot] = !!view && !!said && said.key === view.key && mapShows(slot, view);
    });
    const next = step(prev, {
      now: now, views: views, mode: config.mode,
      intervalMs: config.interval_s * 1000, attentionMs: config.attention_s * 1000,
      idleMs: config.idle_s * 1000, ready: ready, alerts: fresh, statuses: statuses,
      groups: groups,
      lastTouch: W.lastTouch, goto: goto, revoked: revoked,
    });
    W.state = next;
    W.stats.ticks += 1;
    W.stats.flips = next.flips;
    W.stats.attentions = next.attentions;
    if (next.attentions > prev.attentions && config.sound) { beep(); }
    if (config.reload_hours > 0 && now - W.loadedAt > config.reload_hours * 3600000 &&
        next.phase === "rotate") {
      safeReload("periodic");
    }
    const slotViews = SLOTS.map(function (slot) {
      const before = (W.sentViews || {})[slot];
      return before && before.key === next.slots[slot].key ? nu : next.slots[slot];
    });
    W.sentViews = {a: next.slots.a, b: next.slots.b};
    const slotClasses = SLOTS.map(function (slot) {
      return "os-wall-slot" + (slot === next.active ? " os-wall-slot-active" : "");
    });
    const shown = next.slots[next.active];
    if (config.mode === "kiosk") { markKiosk(shown); }
    const said = (readyKeys || [])[SLOTS.indexOf(next.active)];
    const title = said && said.key === shown.key && said.title ? said.title : ((config.titles || {})[shown.key] || "");
    const position = next.phase === "rotate" ? (next.idx + 1) + " / " + views.length : "";
    const progressKey = next.flips + ":" + next.phase;
    let progress = nu;
    if (W.progressKey !== progressKey) {
      W.progressKey = progressKey;
      const seconds = next.phase === "attention" ? config.attention_s : config.interval_s;
      const running = next.phase !== "explore" && (views.length > 1 || next.phase === "attention");
      progress = [
        {namespace: "dash_html_components", type: "Span",
         props: {className: "os-wall-position", children: position}},
        {namespace: "dash_html_components", type: "Div",
         props: {key: progressKey, className: "os-wall-progress-bar" + (running ? " os-wall-progress-run" : ""),
                 style: {animationDuration: seconds + "s"}}},
      ];
    }
    const attention = next.phase === "attention" ? {
      incident: next.attention.incident, until: next.attention.until,
      queued: next.queue.length, overflow: next.overflow,
    } : null;
    const attentionKey = attention ? attention.incident.id + ":" + attention.queued + ":" + attention.overflow : "";
    const attentionOut = attentionKey === W.attentionKey ? nu : attention;
    W.attentionKey = attentionKey;
    const watchIds = next.queue.map(function (i) { return i.id; })
      .concat(attention ? [attention.incident.id] : []);
    const watchKey = watchIds.join(",");
    const watchOut = watchKey === W.watchKey ? nu : watchIds;
    W.watchKey = watchKey;
    const shownKind = next.phase === "attention" ? next.attention.incident.kind : null;
    const forecastShown = shownKind === "forecast";
    const stoppedMs = W.stoppedFor(next.active, now);
    const rootClass = "os-wall os-wall-" + config.mode + " os-lang-" + config.lang +
      " os-wall-phase-" + next.phase + (forecastShown ? " os-wall-attention-forecast" : "") +
      (shownKind === "warning" ? " os-wall-attention-warning" : "") +
      (next.revoked ? " os-wall-revoked" : "") + (stoppedMs ? " os-wall-stale" : "");
    const banner = W.staleText(stoppedMs, config);
    return [slotViews, slotClasses, title, progress, attentionOut, watchOut,
            rootClass === W.rootClass ? nu : (W.rootClass = rootClass), W.countdown(next, now, config),
            banner === W.banner ? nu : (W.banner = banner)];
  };

  /* How long the data on screen has stopped (ms), 0 while it is fresh: stale is what the panels'
     badges say (panels/freshness.py turns them amber); the age is that of the oldest data the
     active slot shows, as the badges' callback dated it. */
  W.stoppedFor = function (slot, now) {
    if (!document.querySelector("#wall-slot-" + slot + " .os-fresh-stale")) { return 0; }
    const seen = window.onescreenFresh || {};
    const prefix = "wall-" + slot + "-";
    let oldest = now;
    Object.keys(seen).forEach(function (key) {
      if (key.indexOf(prefix) === 0) { oldest = Math.min(oldest, seen[key].since); }
    });
    return Math.max(1, now - oldest);
  };

  /* The banner's words: "数据中断 3 分 12 秒", counting up; none while the data is fresh. */
  W.staleText = function (ms, config) {
    if (!ms) { return ""; }
    const total = Math.floor(ms / 1000), m = Math.floor(total / 60), s = total % 60;
    const labels = config.labels || {};
    const text = m ? (labels.stale || "{m}:{s}").replace("{m}", m) : (labels.stale_s || "{s}");
    return text.replace("{s}", s);
  };

  W.countdown = function (state, now, config) {
    if (state.phase !== "attention") { return ""; }
    const left = Math.max(0, Math.ceil((state.attention.until - now) / 1000));
    return (config.labels.resume || "{s}").replace("{s}", left);
  };

  W.gotoView = function (target, current, config) {
    const topic = !!current.topic;
    if (target === "city") { return W.makeView(null, null, current.category, config, topic); }
    if (target === "up") {
      if (current.street) {
        return W.makeView(current.district, null, current.category, config, topic);
      }
      return W.makeView(null, null, current.category, config, topic);
    }
    const category = target === "all" ? null : target;
    // a scenario's button opens its scenario view (its figures and level), where it is one
    return W.makeView(current.district, current.street, category, config, true);
  };

  W.areaView = function (feature, current, config) {
    const p = (feature && feature.properties) || {};
    if (!p.code) { return null; }
    const topic = !!current.topic;
    if (!current.district) { return W.makeView(p.code, null, current.category, config, topic); }
    if (p.district === current.district && p.code !== p.district) {
      return W.makeView(current.district, p.code, current.category, config, topic);
    }
    return null;
  };

  W.makeView = function (district, street, category, config, topic) {
    const place = street || district || "city";
    const scenario = !!topic && !!category && (config.topics || []).indexOf(category) >= 0;
    return {district: district, street: street, category: category, topic: scenario,
            key: scenario ? place + ":topic:" + category : (category ? place + ":" + category : place)};
  };
})();
