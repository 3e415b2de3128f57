/* Map styling functions referenced from Python via dash_extensions.javascript.Namespace.
   Colours, tooltips and labels are computed on the server and passed in `hideout`;
   these functions only look them up, so the geometry (served by URL) is never re-sent. */
/* dash-leaflet fetches the code of its GeoJSON layer (and of the grid's geobuf format) only once
   the page's layout has arrived and rendered a layer: on the map pages, ask for both now, while
   the layout is on its way, so the boundaries' requests start as soon as the layers mount. */
(function preloadMapChunks() {
  const path = window.location.pathname;
  // the grid (geobuf) is fetched only when a district page opens on it
  const grid = new URLSearchParams(window.location.search).get("layer") === "grid";
  const chunks = path.indexOf("/district/") === 0
    ? ["async-GeoJSON.js", ...(grid ? ["async-geobuf.js"] : [])]
    : (path === "/" || path === "/incidents") ? ["async-GeoJSON.js"] : [];
  const script = document.querySelector("script[src*='/dash_leaflet/dash_leaflet']");
  if (!chunks.length || !script) {
    return;
  }
  // beside the library's own script: where its webpack loads the chunks from
  const base = script.src.slice(0, script.src.lastIndexOf("/") + 1);
  chunks.forEach(function (chunk) {
    const link = document.createElement("link");
    link.rel = "preload";
    link.as = "script";
    link.href = base + chunk;
    document.head.appendChild(link);
  });
})();

/* Areas outlined in `color` (a live 预警) drawn above the other areas, whose strokes would
   otherwise cover half of theirs: move those paths after the last area path of their SVG group
   (not last of all: device dots share the group and must stay on top). The style function has
   the feature, not its layer, so this works on the paths themselves, once per frame. */
function raiseOutlines(color) {
  if (raiseOutlines.pending) {
    return;
  }
  raiseOutlines.pending = true;
  const raise = function () {
    raiseOutlines.pending = false;
    document.querySelectorAll("path.os-area").forEach(function (path) {
      const group = path.parentNode;
      if (path.getAttribute("stroke") !== color || !group) {
        return;
      }
      const areas = group.querySelectorAll(":scope > path.os-area");
      const last = areas[areas.length - 1];
      if (last !== path) {
        group.insertBefore(path, last.nextSibling);
      }
    });
  };
  // the paths exist once the layer is on the map: the next frame, and again a little later
  window.requestAnimationFrame(raise);
  window.setTimeout(raise, 400);
}

/* Device clusters (issue 19): a ring whose segments are the cluster's devices by state (p.c,
   counts in STATE_RANK order), so a cluster of 98 % online devices reads mostly green, not as its
   worst device; alarm, 预警 and warning keep at least CLUSTER_MIN_DEG so a single one shows. */
const CLUSTER_MIN_DEG = 14;
const CLUSTER_URGENT = 3; // ranks 0–2: alarm, forecast (预警), warning

function clusterSegments(counts) {
  const total = counts.reduce(function (a, b) { return a + b; }, 0) || 1;
  const angles = counts.map(function (n) { return 360 * n / total; });
  let lifted = 0;
  counts.forEach(function (n, rank) {
    if (n > 0 && rank < CLUSTER_URGENT && angles[rank] < CLUSTER_MIN_DEG) {
      lifted += CLUSTER_MIN_DEG - angles[rank];
      angles[rank] = CLUSTER_MIN_DEG;
    }
  });
  // the room the urgent segments took comes off the others in proportion to their share
  const rest = angles.reduce(function (a, d, rank) { return rank < CLUSTER_URGENT ? a : a + d; }, 0);
  return angles.map(function (d, rank) {
    return rank < CLUSTER_URGENT || rest <= 0 ? d : d - lifted * d / rest;
  });
}

function clusterMarker(p, latlng, h) {
  const colors = h.stateColors || [];
  const names = h.stateNames || [];
  const counts = p.c || colors.map(function (_c, rank) { return rank === p.s ? p.n : 0; });
  const angles = clusterSegments(counts);
  let at = 0;
  const stops = [];
  const tip = [];
  angles.forEach(function (d, rank) {
    if (counts[rank] > 0) {
      stops.push(colors[rank] + " " + at.toFixed(2) + "deg " + (at + d).toFixed(2) + "deg");
      tip.push((names[rank] || rank) + " " + counts[rank].toLocaleString());
      at += d;
    }
  });
  const n = p.n;
  const size = Math.round(30 + 10 * Math.log10(n));
  const label = n >= 10000 ? Math.round(n / 1000) + "k" : (n >= 1000 ? (n / 1000).toFixed(1) + "k" : n);
  return L.marker(latlng, {
    title: tip.join(" · "),
    icon: L.divIcon({
      className: "os-cluster os-cluster-s" + p.s,
      html: "<div class='os-cluster-ring' data-c='" + counts.join(",") + "' style='background:conic-gradient(" +
        stops.join(",") + ")'><span>" + label + "</span></div>",
      iconSize: L.point(size, size),
    }),
  });
}

window.onescreen = Object.assign({}, window.onescreen, {
  map: {
    areaStyle: function (feature, context) {
      const h = (context && context.hideout) || {};
      const code = feature.properties.code;
      const colors = h.colors || {};
      const selected = h.selected === code;
      // a live 预警 and no alarm: a thick dashed outline in the 预警 colour (the fill keeps the
      // metric); style props, not a class, since Leaflet re-applies only those on refresh
      const forecast = !selected && (h.forecast || {})[code] && h.forecastColor;
      const base = h.lineWeight || 1.2;
      if (forecast) {
        raiseOutlines(forecast);
      }
      return {
        // the district code lets a wall tell which layer a map is showing
        className: "os-area os-area-" + code + " os-area-d" + feature.properties.district,
        fillColor: colors[code] || h.noData || "#2b2f37",
        // 0 is a value (the streets over the grid), not a missing one
        fillOpacity: typeof h.fillOpacity === "number" ? h.fillOpacity : 0.78,
        color: selected ? "#ffffff" : (forecast || h.lineColor || "#4fb8ff"),
        weight: selected ? 3.5 : (forecast ? Math.max(3, base * 2.5) : base),
        dashArray: forecast ? "10 6" : (feature.properties.approximate ? "5 4" : null),
        opacity: forecast ? 1 : 0.9,
      };
    },
    areaHover: function (feature, context) {
      return {weight: 3, color: "#ffffff", fillOpacity: 0.92};
    },
    areaTooltip: function (feature, layer, context) {
      const h = (context && context.hideout) || {};
      const tip = (h.tips || {})[feature.properties.code];
      if (tip) {
        layer.bindTooltip(tip, {sticky: true, className: "os-map-tip", direction: "top"});
      }
    },
    outlineStyle: function () {
      return {color: "#9fdcff", weight: 2.5, fill: false, opacity: 0.9, interactive: false};
    },
    cellStyle: function (feature, context) {
      const h = (context && context.hideout) || {};
      const color = (h.colors || {})[feature.properties.code];
      return {
        className: "os-cell",
        fillColor: color || "#000000",
        fillOpacity: color ? 0.72 : 0.0,
        stroke: false,
      };
    },
    cellBelow: function (feature, layer) {
      // the grid loads when chosen, after the streets: keep their outlines above its cells
      layer.on("add", function () {
        layer.bringToBack();
      });
    },
    label: function (feature, latlng) {
      const p = feature.properties;
      return L.marker(latlng, {
        interactive: false,
        keyboard: false,
        icon: L.divIcon({
          className: "os-map-label",
          html: "<span class='os-map-label-name'>" + p.name + "</span>" +
                (p.value ? "<span class='os-map-label-value'>" + p.value + "</span>" : "") +
                (p.forecast ? "<span class='os-map-label-forecast'>" + p.forecast + "</span>" : ""),
          iconSize: null,
        }),
      });
    },
    deviceMarker: function (feature, latlng, context) {
      // server-side clusters (count n, worst state s) or single devices (id, state s)
      const h = (context && context.hideout) || {};
      const colors = h.stateColors || [];
      const p = feature.properties;
      const color = colors[p.s] || "#2fd38a";
      if (p.cluster) {
        return clusterMarker(p, latlng, h);
      }
      return L.circleMarker(latlng, {
        radius: 6,
        weight: 1.5,
        color: "#0b1220",
        fillColor: color,
        fillOpacity: 0.95,
        className: "os-device os-device-s" + p.s,
      }).bindTooltip((h.deviceLabel || "#") + p.id, {className: "os-map-tip"});
    },
    focusMarker: function (feature, latlng) {
      // the incident a wall is drawing attention to: a pulsing ring (CSS) around a dot
      return L.marker(latlng, {
        interactive: false,
        keyboard: false,
        icon: L.divIcon({
          className: "os-focus-marker os-focus-" + (feature.properties.severity || "critical") +
            (feature.properties.kind === "forecast" ? " os-focus-forecast" : ""),
          html: "<span class='os-focus-ring'></span><span class='os-focus-ring os-focus-ring-2'></span><span class='os-focus-dot'></span>",
          iconSize: L.point(28, 28),
        }),
      });
    },
    topicPoint: function (feature, latlng) {
      // a scenario's device beyond its line: amber beyond its normal line, orange beyond its
      // alarm line (red stays the critical incidents')
      // a graduated symbol: the further past its line (an underpass's depth, a river over its
      // warning line), the larger; from 5 px at its normal line to 14 px at three alarm gaps
      const alarm = !!feature.properties.a;
      const past = Math.min(Math.max(Number(feature.properties.k) || 0, 0), 3);
      return L.circleMarker(latlng, {
        radius: 5 + 3 * past,
        weight: 1.5,
        color: "#0b1220",
        fillColor: alarm ? "#ffa23a" : "#f5d547",
        fillOpacity: 0.9,
        className: "os-topic-point" + (alarm ? " os-topic-point-alarm" : ""),
      }).bindTooltip(feature.properties.tip || "", {className: "os-map-tip"});
    },
    incidentPoint: function (feature, latlng, context) {
      const h = (context && context.hideout) || {};
      const colors = h.severityColors || {};
      return L.circleMarker(latlng, {
        radius: 7,
        weight: 1.5,
        color: "#0b1220",
        fillColor: colors[feature.properties.severity] || "#ffa23a",
        fillOpacity: 0.95,
        className: "os-incident-point os-incident-" + feature.properties.severity,
      }).bindTooltip(feature.properties.tip || "", {className: "os-map-tip"});
    },
  },
});

/* Clientside callbacks. A layer whose geometry is loaded only while it is shown (the district
   grid) gets its url in its hideout, with the colours: the url follows the hideout, so the
   features are fetched after the colours they are drawn with have arrived, and a hideout
   without one empties the layer. */
window.dash_clientside = window.dash_clientside || {};
window.dash_clientside.onescreen_map = {
  layerUrl: function (hideout, current) {
    const url = (hideout && hideout.url) || null;
    return url === (current || null) ? window.dash_clientside.no_update : url;
  },
};

/* WGS-84 → GCJ-02 for maps drawn on GCJ-02 tiles (AMap/Gaode); only used when configured. */
(function () {
  const A = 6378245.0, EE = 0.00669342162296594323;
  function tLat(x, y) {
    let r = -100 + 2 * x + 3 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * Math.sqrt(Math.abs(x));
    r += (20 * Math.sin(6 * x * Math.PI) + 20 * Math.sin(2 * x * Math.PI)) * 2 / 3;
    r += (20 * Math.sin(y * Math.PI) + 40 * Math.sin(y / 3 * Math.PI)) * 2 / 3;
    r += (160 * Math.sin(y / 12 * Math.PI) + 320 * Math.sin(y * Math.PI / 30)) * 2 / 3;
    return r;
  }
  function tLon(x, y) {
    let r = 300 + x + 2 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * Math.sqrt(Math.abs(x));
    r += (20 * Math.sin(6 * x * Math.PI) + 20 * Math.sin(2 * x * Math.PI)) * 2 / 3;
    r += (20 * Math.sin(x * Math.PI) + 40 * Math.sin(x / 3 * Math.PI)) * 2 / 3;
    r += (150 * Math.sin(x / 12 * Math.PI) + 300 * Math.sin(x / 30 * Math.PI)) * 2 / 3;
    return r;
  }
  window.onescreen.map.toGcj02 = function (coords) {
    const lon = coords[0], lat = coords[1];
    let dLat = tLat(lon - 105, lat - 35), dLon = tLon(lon - 105, lat - 35);
    const rad = lat / 180 * Math.PI;
    let magic = 1 - EE * Math.sin(rad) * Math.sin(rad);
    const sq = Math.sqrt(magic);
    dLat = (dLat * 180) / ((A * (1 - EE)) / (magic * sq) * Math.PI);
    dLon = (dLon * 180) / (A / sq * Math.cos(rad) * Math.PI);
    return L.latLng(lat + dLat, lon + dLon);
  };
})();
