/* Live critical and major incidents as markers (components/incident_markers.py): a dot in the
   severity's colour in its own pane above every other layer; while the incident is
   unacknowledged, a ring around it in the pane just below, and that pane (one layer, whatever
   the number of rings) pulses as a whole (CSS): hundreds of rings cost one animation, not
   hundreds. A click opens the incident on the incidents page. */
(function () {
  if (window.L && window.L.Map) {
    L.Map.addInitHook(function () {
      const pane = this.createPane("os-incidents-pulse");
      pane.style.zIndex = 639;
      pane.style.pointerEvents = "none";
    });
  }
})();
window.onescreen = Object.assign({}, window.onescreen, {
  markers: {
    incidentMarker: function (feature, latlng, context) {
      const h = (context && context.hideout) || {};
      const p = feature.properties;
      const critical = p.severity === "critical";
      const color = (h.colors || {})[p.severity] || "#ff4d5e";
      const size = critical ? 22 : 18;
      const marker = L.marker(latlng, {
        pane: h.pane || "markerPane",
        interactive: !!p.href,
        keyboard: false,
        // criticals above majors whatever their latitude
        zIndexOffset: critical ? 1000 : 0,
        icon: L.divIcon({
          className: "os-inc-marker os-inc-" + p.severity + (p.pulse ? " os-inc-pulse" : " os-inc-acked") +
            " os-inc-id-" + p.id,
          html: "<span class='os-inc-dot' style='background:" + color + "'></span>",
          iconSize: L.point(size, size),
        }),
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
      const ring = L.marker(latlng, {
        pane: "os-incidents-pulse",
        interactive: false,
        keyboard: false,
        icon: L.divIcon({
          className: "os-inc-halo os-inc-" + p.severity + " os-inc-halo-id-" + p.id,
          html: "<span class='os-inc-ring'></span>",
          iconSize: L.point(size, size),
        }),
      });
      return L.featureGroup([ring, marker]);
    },
  },
});
