/* Live critical and major incidents as markers (components/incident_markers.py): a dot in the
   severity's colour in its own pane above every other layer; while the incident is
   unacknowledged, a ring around it in the pane just below, and that pane blinks as a whole
   (闪烁: every 0.8 s, by one timer for the page): hundreds of rings cost two style changes a
   second, where a CSS animation repaints every frame (measured: the Pudong page drew in twice
   the time). Still under prefers-reduced-motion. A click opens the incident.
   A street's many majors come as one group: a numbered bubble (in a pane under the dots, a
   circle and its number in the pane's SVG) until the map is at street zoom, then their own dots,
   made only then. */
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

  // a class made on first use: Leaflet is there by then, whatever the order scripts loaded in
  function madeOnce(make) {
    let made = null;
    return function () { return made || (made = make()); };
  }

  // a marker and its unacknowledged ring, in the blinking pane below the dots
  function withRing(marker, latlng, ring) {
    return L.featureGroup([L.circleMarker(latlng, {
      pane: "os-incidents-pulse", radius: ring.radius, color: ring.color, weight: ring.weight,
      fill: false, interactive: false, className: "os-inc-halo " + ring.className,
    }), marker]);
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
    return withRing(marker, latlng, {
      radius: critical ? 19 : 15, color: color, weight: 3,
      className: "os-inc-" + p.severity + " os-inc-halo-id-" + p.id,
    });
  }

  // the bubble's number, an SVG text over its circle in the same SVG: bubbles stay vector paths
  // (a div icon each is a compositing layer of its own, which cost every frame on walls)
  const bubbleLayer = madeOnce(function () {
    return L.CircleMarker.extend({
      onAdd: function (map) {
        L.CircleMarker.prototype.onAdd.call(this, map);
        const text = this._count = L.SVG.create("text");
        text.setAttribute("class", "os-inc-group-count");
        text.setAttribute("text-anchor", "middle");
        text.setAttribute("dominant-baseline", "central");
        text.setAttribute("data-ids", this.options.ids);
        text.textContent = String(this.options.count);
        this._path.parentNode.insertBefore(text, this._path.nextSibling);
        this._placeCount();
      },
      onRemove: function (map) {
        if (this._count) {
          this._count.remove();
          this._count = null;
        }
        L.CircleMarker.prototype.onRemove.call(this, map);
      },
      _updatePath: function () {
        L.CircleMarker.prototype._updatePath.call(this);
        this._placeCount();
      },
      _placeCount: function () {
        if (this._count && this._point) {
          this._count.setAttribute("x", this._point.x);
          this._count.setAttribute("y", this._point.y);
        }
      },
    });
  });

  // the bubble of a street's majors: its count, its ids (for tests and tools), a ring if any
  // is unacknowledged; a click zooms to the street. Walls draw it larger (read across the room).
  function bubble(map, latlng, p, h) {
    const ids = p.members.map(function (m) { return m[2]; }).join(" ");
    const pulse = p.open > 0;
    const wall = !!map.getContainer().closest(".os-wall-area-map");
    const radius = (wall ? 22 : 13) + (p.count > 99 ? (wall ? 6 : 4) : 0);
    const marker = new (bubbleLayer())(latlng, {
      pane: "os-incidents-groups",
      radius: radius,
      color: "#0b1220",
      weight: 2,
      fillColor: (h.colors || {}).major || "#ffa23a",
      fillOpacity: pulse ? 1 : 0.85,
      interactive: true,
      className: "os-inc-group os-inc-major" + (pulse ? " os-inc-pulse" : " os-inc-acked") +
        " os-inc-group-street-" + p.street,
      ids: ids,
      count: p.count,
    });
    if (p.tip) {
      marker.bindTooltip(p.tip, {className: "os-map-tip", direction: "top"});
    }
    marker.on("click", function () {
      const box = L.latLngBounds(p.members.map(function (m) { return [m[1], m[0]]; }));
      const zoom = Math.max(STREET_ZOOM, Math.min(map.getBoundsZoom(box.pad(0.2)), 16));
      map.setView(box.getCenter(), zoom);
    });
    if (!pulse) {
      return marker;
    }
    return withRing(marker, latlng, {
      radius: radius + (wall ? 12 : 8), color: (h.colors || {}).major || "#ffa23a",
      weight: wall ? 5 : 3, className: "os-inc-group-ring",
    });
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
  const groupLayer = madeOnce(function () {
    return L.Layer.extend({
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
        bubble(this._map, this._latlng, this._p, this._h);
      this._shown.addTo(this._map);
    },
  });
  });

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
