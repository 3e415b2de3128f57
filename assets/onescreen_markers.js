/* Live critical and major incidents as markers (components/incident_markers.py): a dot in the
   severity's colour in its own pane above every other layer; while the incident is
   unacknowledged, a ring around it in the pane just below, and that pane blinks as a whole
   (闪烁: every 0.8 s, by one timer for the page): hundreds of rings cost two style changes a
   second, where a CSS animation repaints every frame (measured: the Pudong page drew in twice
   the time). Still under prefers-reduced-motion. A click opens the incident.
   A street's many majors come as one group: a numbered bubble (in a pane under the dots) until
   the map is at street zoom, then their own dots, made only then. */
(function () {
  if (!window.L || !window.L.Map) { return; }
  const PULSE = "os-incidents-pulse", GROUPS = "os-incidents-groups";
  L.Map.addInitHook(function () {
    [[PULSE, 639], [GROUPS, 638]].forEach(function (made) {
      const pane = this.createPane(made[0]);
      pane.style.zIndex = made[1];
      pane.style.pointerEvents = "none";
    }, this);
  });
  const still = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)");
  let dim = false;
  window.setInterval(function () {
    dim = !dim && !(still && still.matches);
    document.querySelectorAll(".leaflet-" + PULSE + "-pane").forEach(function (pane) {
      pane.style.opacity = dim ? "0.2" : "";
    });
  }, 800);
})();
(function () {
  // from this zoom a group shows its members (a street fills a good part of the screen)
  const STREET_ZOOM = 14;

  function open(href) {
    // through the router (dcc.Location listens to popstate): no full page load
    window.history.pushState({}, "", href);
    window.dispatchEvent(new PopStateEvent("popstate"));
  }

  // one incident: its dot, and its ring while unacknowledged
  function single(latlng, p, h) {
    const critical = p.severity === "critical";
    const color = (h.colors || {})[p.severity] || "#ff4d5e";
    // vector dots, one path each in one SVG per pane (Leaflet makes a renderer per pane):
    // hundreds of them stay light, where a div icon each weighed on the page
    const marker = L.circleMarker(latlng, {
      pane: h.pane || "markerPane",
      radius: critical ? 10 : 8,
      color: critical ? "#ffffff" : "#0b1220",
      weight: critical ? 3 : 2,
      fillColor: color,
      fillOpacity: p.pulse ? 1 : 0.85,
      interactive: !!p.href,
      className: "os-inc-marker os-inc-" + p.severity + (p.pulse ? " os-inc-pulse" : " os-inc-acked") +
        " os-inc-id-" + p.id,
    });
    if (p.tip) {
      marker.bindTooltip(p.tip, {className: "os-map-tip", direction: "top"});
    }
    if (p.href) {
      marker.on("click", function () { open(p.href); });
    }
    if (!p.pulse) {
      return marker;
    }
    const ring = L.circleMarker(latlng, {
      pane: "os-incidents-pulse",
      radius: critical ? 19 : 15,
      color: color,
      weight: 3,
      fill: false,
      interactive: false,
      className: "os-inc-halo os-inc-" + p.severity + " os-inc-halo-id-" + p.id,
    });
    return L.featureGroup([ring, marker]);
  }

  // the bubble of a street's majors: its count, its ids (for tests and tools), a ring if any
  // is unacknowledged; a click zooms to the street
  function bubble(latlng, p, h) {
    const ids = p.members.map(function (m) { return m[2]; }).join(" ");
    const pulse = p.open > 0;
    const marker = L.marker(latlng, {
      pane: "os-incidents-groups",
      keyboard: false,
      interactive: true,
      icon: L.divIcon({
        className: "os-inc-group os-inc-major" + (pulse ? " os-inc-pulse" : " os-inc-acked"),
        html: "<span class='os-inc-group-count' data-ids='" + ids + "'>" + p.count + "</span>",
        iconSize: [0, 0],
      }),
    });
    if (p.tip) {
      marker.bindTooltip(p.tip, {className: "os-map-tip", direction: "top", offset: [0, -16]});
    }
    marker.on("click", function () {
      const map = marker._map;
      const box = L.latLngBounds(p.members.map(function (m) { return [m[1], m[0]]; }));
      const zoom = Math.max(STREET_ZOOM, Math.min(map.getBoundsZoom(box.pad(0.2)), 16));
      map.setView(box.getCenter(), zoom);
    });
    if (!pulse) {
      return marker;
    }
    const ring = L.marker(latlng, {
      pane: "os-incidents-pulse",
      interactive: false,
      keyboard: false,
      icon: L.divIcon({className: "os-inc-group-ring", html: "<span></span>", iconSize: [0, 0]}),
    });
    return L.layerGroup([ring, marker]);
  }

  function members(p, h) {
    return L.layerGroup(p.members.map(function (m) {
      return single([m[1], m[0]], {
        id: m[2], severity: p.severity, pulse: !!m[3], tip: m[4],
        href: p.link ? p.link + m[2] : null,
      }, h);
    }));
  }

  // a group: the bubble below street zoom, the members from it; each made when first needed
  // made on first use: Leaflet is there by then, whatever the order scripts loaded in
  let Group = null;
  const groupLayer = function () {
    return Group || (Group = L.Layer.extend({
    initialize: function (latlng, p, h) {
      this._latlng = latlng;
      this._p = p;
      this._h = h;
      this._shown = null;
      this._mode = null;
    },
    onAdd: function (map) {
      map.on("zoomend", this._sync, this);
      this._sync();
    },
    onRemove: function (map) {
      map.off("zoomend", this._sync, this);
      if (this._shown) {
        map.removeLayer(this._shown);
      }
      this._shown = this._mode = null;
    },
    _sync: function () {
      const mode = this._map.getZoom() >= STREET_ZOOM ? "members" : "bubble";
      if (mode === this._mode) {
        return;
      }
      if (this._shown) {
        this._map.removeLayer(this._shown);
      }
      this._mode = mode;
      this._shown = mode === "members" ? members(this._p, this._h) :
        bubble(this._latlng, this._p, this._h);
      this._shown.addTo(this._map);
    },
  }));
  };

  window.onescreen = Object.assign({}, window.onescreen, {
    markers: {
      incidentMarker: function (feature, latlng, context) {
        const h = (context && context.hideout) || {};
        const p = feature.properties;
        return p.members ? new (groupLayer())(latlng, p, h) : single(latlng, p, h);
      },
    },
  });
})();
