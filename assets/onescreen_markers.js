/* Live critical and major incidents as markers (components/incident_markers.py): a dot in the
   severity's colour in its own pane above every other layer; while the incident is
   unacknowledged, a ring around it in the pane just below, and that pane blinks as a whole
   (闪烁: every 0.8 s, by one timer for the page): hundreds of rings cost two style changes a
   second, where a CSS animation repaints every frame (measured: the Pudong page drew in twice
   the time). Still under prefers-reduced-motion. A click opens the incident. */
(function () {
  if (!window.L || !window.L.Map) { return; }
  const PANE = "os-incidents-pulse";
  L.Map.addInitHook(function () {
    const pane = this.createPane(PANE);
    pane.style.zIndex = 639;
    pane.style.pointerEvents = "none";
  });
  const still = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)");
  let dim = false;
  window.setInterval(function () {
    dim = !dim && !(still && still.matches);
    document.querySelectorAll(".leaflet-" + PANE + "-pane").forEach(function (pane) {
      pane.style.opacity = dim ? "0.2" : "";
    });
  }, 800);
})();
window.onescreen = Object.assign({}, window.onescreen, {
  markers: {
    incidentMarker: function (feature, latlng, context) {
      const h = (context && context.hideout) || {};
      const p = feature.properties;
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
        marker.on("click", function () {
          // through the router (dcc.Location listens to popstate): no full page load
          window.history.pushState({}, "", p.href);
          window.dispatchEvent(new PopStateEvent("popstate"));
        });
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
    },
  },
});
